"""The guards every door goes through: one order, refusals before anything is written or spent, roles where a
platform has them, and one fail-open rule for the rate guard when Redis is down."""

from __future__ import annotations

import dataclasses

import pytest
from redis.asyncio import Redis

from adapters.console.inbound import console_thread, to_event
from bot.catalog import COMMANDS
from bot.errors import InvalidInput, NotAllowed, RateLimited
from bot.events import FileRef, Roles, SlashCommand
from bot.guards import CHAIN_RUN, MESSAGE, Guards, Request, access_guard, dedupe_key, rate_guard
from bot.intake import accept
from bot.runtime import Runtime

PDF = FileRef("F1", "report.pdf", "application/pdf", 2_000, "file:///tmp/report.pdf")


def request(**fields: object) -> Request:
    values: dict[str, object] = {"thread": console_thread("g"), "user_id": "ada", "text": "hello"}
    values.update(fields)
    return Request(**values)  # type: ignore[arg-type]


async def test_a_refused_file_spends_no_rate_limit_token(runtime: Runtime) -> None:
    runtime.settings = runtime.settings.model_copy(update={"rate_limit_per_minute": 1})
    with pytest.raises(InvalidInput, match=r"I can't digest “report\.pdf”"):
        await MESSAGE.admit(runtime, request(files=(PDF,)))
    await MESSAGE.admit(runtime, request())  # the one message this minute allows
    with pytest.raises(RateLimited):
        await MESSAGE.admit(runtime, request())


async def test_bad_text_is_refused_before_the_allowlist_is_consulted(runtime: Runtime) -> None:
    runtime.settings = runtime.settings.model_copy(update={"allowed_users": frozenset({"bob"})})
    with pytest.raises(InvalidInput, match="empty"):
        await MESSAGE.admit(runtime, request(text="  "))
    with pytest.raises(NotAllowed, match="not enabled for you"):
        await MESSAGE.admit(runtime, request())


async def test_roles_are_checked_where_the_platform_has_them(runtime: Runtime) -> None:
    runtime.settings = runtime.settings.model_copy(update={"allowed_roles": frozenset({"helpers"})})
    await MESSAGE.admit(runtime, request(roles=None))  # no roles on this platform: ALLOWED_ROLES is moot
    await MESSAGE.admit(runtime, request(roles=Roles(frozenset({"123", "helpers"}))))
    with pytest.raises(NotAllowed, match="Ask an administrator for access"):
        await MESSAGE.admit(runtime, request(roles=Roles(frozenset({"456", "guests"}))))
    with pytest.raises(NotAllowed, match="roles can't be checked here"):
        await MESSAGE.admit(runtime, request(roles=Roles(known=False)))


@pytest.mark.parametrize("guards", [MESSAGE, CHAIN_RUN], ids=["message", "chain run"])
async def test_with_redis_down_the_rate_guard_lets_requests_through(guards: Guards, runtime: Runtime) -> None:
    runtime.settings = runtime.settings.model_copy(update={"rate_limit_per_minute": 1})
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        without_redis = dataclasses.replace(runtime, redis=dead)
        for _ in range(3):
            admitted = await guards.admit(without_redis, request(kind="request"))
            assert admitted.duplicate is None
    finally:
        await dead.aclose()


async def test_a_duplicate_delivery_stops_the_pipeline_before_the_rate_guard(runtime: Runtime) -> None:
    runtime.settings = runtime.settings.model_copy(update={"rate_limit_per_minute": 1})
    event = to_event("once", "g", user="ada", event_id="E7")
    accepted = await accept(runtime, event)
    for _ in range(2):  # the one token this minute was spent by the first delivery
        again = await MESSAGE.admit(runtime, request(text="once", dedupe_key=dedupe_key(event)))
    assert again.duplicate is not None
    assert again.duplicate.message_id == accepted.message_id


async def test_a_slash_command_off_the_allowlist_is_refused_before_its_handler(runtime: Runtime) -> None:
    runtime.settings = runtime.settings.model_copy(update={"allowed_channels": frozenset({"elsewhere"})})
    thread = console_thread("g")
    reply = await COMMANDS.handle(runtime, SlashCommand("C1", thread, "ada", "remind", "in 2 hours stretch"))
    assert not reply.accepted
    assert reply.text == (
        "Sorry, I'm not enabled for this channel. Ask an administrator to add this channel to my allowlist."
    )


async def test_a_door_runs_its_guards_in_the_one_order_whatever_order_it_names_them(runtime: Runtime) -> None:
    runtime.settings = runtime.settings.model_copy(
        update={"rate_limit_per_minute": 1, "allowed_users": frozenset({"bob"})}
    )
    door = Guards(rate_guard, access_guard)
    with pytest.raises(NotAllowed):
        await door.admit(runtime, request(user_id="mallory"))
    with pytest.raises(NotAllowed):
        await door.admit(runtime, request(user_id="mallory"))  # access came first: no token was spent, nor now
    runtime.settings = runtime.settings.model_copy(update={"allowed_users": frozenset()})
    await door.admit(runtime, request(user_id="mallory"))
    with pytest.raises(RateLimited):
        await door.admit(runtime, request(user_id="mallory"))

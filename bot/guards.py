"""The guards every door goes through, in one order: text -> access -> files -> dedupe -> rate.

A door (a message, a slash command, a chain run, Discord's checks before it opens a thread) runs the guards that
apply to it, always in this order, and all of them before any side effect: a refusal raises a `UserFacingError`
whose text the adapter shows, and nothing has been written, opened or posted by then. A message admitted once is
not admitted again (`bot.intake.accept` takes an `Admitted`), so its rate-limit token is spent once.

One rule for Redis being down: the rate guard lets the request through (refusing everyone while Redis is away
would lose more than the limit protects), and says so in the log. Postgres being down is not a refusal; it is an
error of ours, and the door tells the user to try again.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

import structlog
from redis.exceptions import RedisError

from bot.config import Settings
from bot.errors import InvalidInput, NotAllowed, RateLimited, UserFacingError
from bot.events import FileRef, IncomingMessage, Roles, SlashCommand, ThreadRef
from bot.media.accept import check_files
from bot.ratelimit import RateLimiter
from bot.runtime import Runtime
from bot.stores.intake import StoredMessage, find_by_dedupe_key

log = structlog.get_logger(__name__)

Kind = Literal["message", "request"]


@dataclass(frozen=True, slots=True)
class Request:
    """What a door asks to let through. A guard with nothing to check passes: no `text`, no text check; no
    `dedupe_key`, no dedupe."""

    thread: ThreadRef
    user_id: str
    kind: Kind = "message"  # how the rate guard words a refusal
    text: str | bytes | None = None
    files: tuple[FileRef, ...] = ()
    roles: Roles | None = None
    dedupe_key: str = ""


@dataclass(slots=True)
class Admitted:
    """What passed: the text as it will be stored (normalised), and the message this delivery already is, when
    the dedupe guard found one (then the rate guard did not run: a platform's retry costs no token)."""

    request: Request
    text: str = ""
    duplicate: StoredMessage | None = field(default=None)
    # The rate guard's count of this request, for a writer that finds it was a redelivery after all.
    rate: RateLimiter | None = None


Guard = Callable[[Runtime, Admitted], Awaitable[None]]


def dedupe_key(event: IncomingMessage) -> str:
    return f"{event.thread.platform}:{event.thread.workspace_id}:{event.event_id}"


def message_request(event: IncomingMessage) -> Request:
    return Request(event.thread, event.user_id, "message", event.text, event.files, event.roles, dedupe_key(event))


def command_request(command: SlashCommand) -> Request:
    # A command's words are checked like a message's when it has any; its own parser then reads them.
    text = command.text if command.text.strip() else None
    return Request(command.thread, command.user_id, "request", text, roles=command.roles)


# -- the guards, in their order -------------------------------------------------------------------------------


def validate_text(raw: str | bytes, settings: Settings) -> str:
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(
                f"I couldn't read that message: it isn't valid UTF-8 text (bad byte at position {exc.start})."
            ) from None
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("I couldn't read that message: it contains broken characters (lone surrogates).") from None
    if "\x00" in raw:
        raise InvalidInput("I couldn't read that message: it contains a NUL character.")
    text = unicodedata.normalize("NFC", raw).strip()
    if not text:
        raise InvalidInput("Your message is empty. Write something and I'll answer.")
    if len(text) > settings.max_message_chars:
        raise InvalidInput(
            f"Your message is {len(text):,} characters long; the limit is {settings.max_message_chars:,}. "
            "Shorten it or send it as a file."
        )
    return text


async def text_guard(runtime: Runtime, admitted: Admitted) -> None:
    if admitted.request.text is not None:
        admitted.text = validate_text(admitted.request.text, runtime.settings)


def authorize(thread: ThreadRef, user_id: str, settings: Settings, roles: Roles | None = None) -> None:
    checks = (
        (settings.allowed_workspaces, thread.workspace_id, "this workspace"),
        (settings.allowed_channels, thread.channel_id, "this channel"),
        (settings.allowed_users, user_id, "you"),
    )
    for allowed, value, who in checks:
        if allowed and value not in allowed:
            log.info("refused by allowlist", who=who, value=value)
            raise NotAllowed(f"Sorry, I'm not enabled for {who}. Ask an administrator to add {who} to my allowlist.")
    # Roles are the platform's own access control (Discord's); where a platform has none, ALLOWED_ROLES is moot.
    if roles is None or not settings.allowed_roles:
        return
    if not roles.known:
        raise NotAllowed("Sorry, I only answer members with certain roles, and roles can't be checked here.")
    if not roles.names & settings.allowed_roles:
        log.info("refused by role allowlist", user=user_id)
        raise NotAllowed("Sorry, I only answer members with certain roles. Ask an administrator for access.")


async def access_guard(runtime: Runtime, admitted: Admitted) -> None:
    request = admitted.request
    authorize(request.thread, request.user_id, runtime.settings, request.roles)


async def files_guard(runtime: Runtime, admitted: Admitted) -> None:
    check_files(admitted.request.files, runtime.settings)


async def dedupe_guard(runtime: Runtime, admitted: Admitted) -> None:
    if admitted.request.dedupe_key:
        admitted.duplicate = await find_by_dedupe_key(runtime, admitted.request.dedupe_key)


async def rate_guard(runtime: Runtime, admitted: Admitted) -> None:
    settings, request = runtime.settings, admitted.request
    subject = f"{request.thread.platform}:{request.thread.workspace_id}:{request.user_id}"
    limiter = RateLimiter(runtime.redis, settings.rate_limit_per_minute)
    try:
        wait_s = await limiter.hit(subject)
    except (OSError, RedisError) as exc:
        log.warning("rate limiter unavailable; letting the request through", error=str(exc), user=request.user_id)
        return
    admitted.rate = limiter
    if wait_s is not None:
        log.info("rate limited", user=request.user_id, retry_after_s=round(wait_s, 1))
        raise RateLimited(
            f"You're sending {request.kind}s faster than I can take them ({settings.rate_limit_per_minute} a "
            f"minute). Try again in {max(1, round(wait_s))} s.",
            retry_after_s=wait_s,
        )


ORDER: tuple[Guard, ...] = (text_guard, access_guard, files_guard, dedupe_guard, rate_guard)


class Guards:
    """The guards of one door: a subset of `ORDER`, run in that order."""

    def __init__(self, *guards: Guard) -> None:
        unknown = [g for g in guards if g not in ORDER]
        if unknown:
            raise ValueError(f"not a guard: {unknown}")
        self._guards = tuple(g for g in ORDER if g in guards)

    async def admit(self, runtime: Runtime, request: Request, *, dedupe_at_write: bool = False) -> Admitted:
        """Run the guards in order. `dedupe_at_write`: the caller's write finds a duplicate itself (intake's
        insert does, ON CONFLICT), so the dedupe lookup is skipped, one statement fewer per message, unless a
        later guard refuses: then it runs, and a redelivery of a message we hold is taken as that, not refused.
        Such a caller refunds the rate guard's count (`Admitted.rate`) when its write finds a duplicate."""
        admitted = Admitted(request)
        for guard in self._guards:
            if guard is dedupe_guard and dedupe_at_write:
                continue
            try:
                await guard(runtime, admitted)
            except UserFacingError:
                if not dedupe_at_write or not _after_dedupe(self._guards, guard):
                    raise
                await dedupe_guard(runtime, admitted)
                if admitted.duplicate is None:
                    raise
            if admitted.duplicate is not None:
                break  # a delivery we hold already: what follows was checked when it first came
        return admitted


def _after_dedupe(guards: tuple[Guard, ...], guard: Guard) -> bool:
    return dedupe_guard in guards and guards.index(guard) > guards.index(dedupe_guard)


# A message: everything. It is what intake runs, and what Discord runs before it opens a thread for one.
MESSAGE = Guards(*ORDER)
# A slash command before its handler: its words and who may use it (work it starts has its own door).
COMMAND = Guards(text_guard, access_guard)
# A chain run started by a command: who may, and the same per-user rate as messages.
CHAIN_RUN = Guards(access_guard, rate_guard)

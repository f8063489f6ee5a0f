"""Conversations on Discord end to end: the sandbox's gateway delivers real payloads to discord.py, our handler
hands them to intake, the real worker answers through the stand-in LLM and posts over REST into the sandbox."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from adapters.discord.gateway import DiscordGateway
from adapters.discord.outbound import DiscordOutbound
from bot.models import MESSAGES
from bot.runtime import Runtime
from sandbox.openai_server import StandInLLM, Step
from tests.adapters.discord.conftest import Intake, World, answered
from tests.conftest import wait_for


async def test_a_mention_opens_a_thread_and_one_streamed_reply_lands_in_it(
    world: World, gateway: DiscordGateway, worker: asyncio.Task[None], stand_in: StandInLLM, runtime: Runtime
) -> None:
    answer = "Paris is the capital of France, and it has been for a very long time indeed."
    stand_in.token_delay = 0.1  # about 1.5 s of streaming: long enough for an edit at Discord's pace
    stand_in.script(Step(reply=answer))
    asked = await world.fake.user_message(
        world.general, "What is the capital of France?", author=world.ada, mention_bot=True
    )

    threads = await wait_for(lambda: world.fake.threads_of(world.general))
    assert [t["id"] for t in threads] == [asked["id"]], "the thread starts from the user's message"
    assert threads[0]["name"] == "What is the capital of France?"
    await wait_for(lambda: answered(runtime, 1))
    assert world.fake.bot_texts(asked["id"]) == [answer]
    assert world.fake.bot_texts(world.general) == [], "nothing is posted in the channel itself"
    edits = world.fake.edits(asked["id"])[0]
    assert edits, "the reply was streamed: posted early, then edited"
    assert edits[-1] == answer
    assert stand_in.chat_requests()[-1]["messages"][-1] == {"role": "user", "content": "What is the capital of France?"}


async def test_a_follow_up_in_the_thread_continues_the_conversation_without_a_mention(
    world: World, gateway: DiscordGateway, worker: asyncio.Task[None], stand_in: StandInLLM, runtime: Runtime
) -> None:
    stand_in.script(Step(reply="I'll remember pineapple."), Step(reply="You asked me to remember pineapple."))
    asked = await world.fake.user_message(
        world.general, "Remember the word pineapple.", author=world.ada, mention_bot=True
    )
    thread = asked["id"]
    await wait_for(lambda: answered(runtime, 1))
    await world.fake.user_message(thread, "Which word was it?", author=world.ada)
    await wait_for(lambda: answered(runtime, 2))

    assert world.fake.bot_texts(thread) == ["I'll remember pineapple.", "You asked me to remember pineapple."]
    prompt = stand_in.chat_requests()[-1]["messages"]
    assert [(m["role"], m["content"]) for m in prompt[1:]] == [
        ("user", "Remember the word pineapple."),
        ("assistant", "I'll remember pineapple."),
        ("user", "Which word was it?"),
    ]
    assert len(world.fake.threads_of(world.general)) == 1


async def test_a_thread_of_ours_missing_from_the_cache_is_recognised_from_postgres(
    world: World, gateway: DiscordGateway, worker: asyncio.Task[None], stand_in: StandInLLM, runtime: Runtime
) -> None:
    stand_in.script(Step(reply="First."), Step(reply="Still following."))
    asked = await world.fake.user_message(world.general, "start", author=world.ada, mention_bot=True)
    await wait_for(lambda: answered(runtime, 1))
    # discord.py drops the thread from its cache (as after an archive); the thread itself lives on.
    thread = world.fake.channels[asked["id"]]
    await world.fake.dispatch(
        "THREAD_DELETE", {"id": thread["id"], "guild_id": world.guild, "parent_id": world.general, "type": 11}
    )
    await wait_for(lambda: gateway.get_channel(int(thread["id"])) is None)
    await world.fake.user_message(thread["id"], "no mention needed", author=world.ada)
    await wait_for(lambda: answered(runtime, 2))
    assert world.fake.bot_texts(thread["id"]) == ["First.", "Still following."]
    assert stand_in.chat_requests()[-1]["messages"][1]["content"] == "start", "with the thread's history"


async def test_in_someone_elses_thread_the_bot_answers_only_when_mentioned(
    world: World, gateway: DiscordGateway, worker: asyncio.Task[None], intake: Intake, runtime: Runtime
) -> None:
    started = await world.fake.user_message(world.general, "team chat", author=world.ada)
    thread = {**world.fake.channels[world.general], "id": started["id"], "type": 11, "parent_id": world.general,
              "owner_id": world.ada["id"], "message_count": 0, "member_count": 1,
              "thread_metadata": {"archived": False, "auto_archive_duration": 1440,
                                  "archive_timestamp": started["timestamp"], "locked": False}}  # fmt: skip
    world.fake.channels[thread["id"]] = thread
    world.fake.messages[thread["id"]] = []
    await world.fake.dispatch("THREAD_CREATE", {**thread, "newly_created": True})
    await world.fake.user_message(thread["id"], "humans talking", author=world.ada)
    await world.fake.user_message(thread["id"], "bot, a question", author=world.ada, mention_bot=True)
    # discord.py runs each event's handler as a task of its own: two mentions a moment apart may reach intake in
    # either order (overlapping messages are issue 15's), so this test lets the first one in before the next.
    await wait_for(lambda: len(intake.events) == 1)
    await world.fake.user_message(thread["id"], "humans again", author=world.ada)
    await world.fake.user_message(thread["id"], "bot, another", author=world.ada, mention_bot=True)
    await wait_for(lambda: answered(runtime, 2))
    assert [e.text for e in intake.events] == ["bot, a question", "bot, another"]
    assert {e.thread.thread_key for e in intake.events} == {thread["id"]}


async def test_a_redelivered_mention_gives_one_thread_and_one_reply(
    world: World, gateway: DiscordGateway, worker: asyncio.Task[None], stand_in: StandInLLM, runtime: Runtime
) -> None:
    stand_in.script(Step(reply="Only once."))
    asked = await world.fake.user_message(world.general, "once please", author=world.ada, mention_bot=True)
    await wait_for(lambda: answered(runtime, 1))
    await world.fake.dispatch("MESSAGE_CREATE", asked)  # the gateway delivers it again (resume, restart)
    await world.fake.user_message(asked["id"], "and a follow-up", author=world.ada)
    await wait_for(lambda: answered(runtime, 2))
    assert world.fake.bot_texts(asked["id"])[0] == "Only once."
    assert len(world.fake.bot_texts(asked["id"])) == 2
    assert world.fake.bot_texts(world.general) == [], "no notice about threads for the redelivery"
    assert len(stand_in.chat_requests()) == 2


async def test_messages_without_a_mention_and_from_bots_are_ignored(
    world: World, gateway: DiscordGateway, worker: asyncio.Task[None], intake: Intake, runtime: Runtime
) -> None:
    other_bot = world.fake.user_payload("otherbot", bot=True)
    await world.fake.user_message(world.general, "just chatting", author=world.ada)
    await world.fake.user_message(world.general, "hey bot", author=other_bot, mention_bot=True)
    await world.fake.user_message(world.general, "", author=world.ada, mention_bot=True, message_type=6)  # a pin
    await world.fake.user_message(world.general, "", author=world.ada)  # a sticker alone: no text
    # The gateway delivers in order: once this one is taken, the two before it were seen and passed over.
    await world.fake.user_message(world.general, "now you", author=world.ada, mention_bot=True)
    await wait_for(lambda: answered(runtime, 1))
    assert [e.text for e in intake.events] == ["now you"]
    assert len(world.fake.threads_of(world.general)) == 1
    assert world.fake.bot_texts(world.general) == [], "no 'your message is empty' for system notices"


async def test_a_direct_message_is_answered_in_the_dm(
    world: World, gateway: DiscordGateway, worker: asyncio.Task[None], stand_in: StandInLLM, runtime: Runtime
) -> None:
    stand_in.script(Step(reply="Hello in private."))
    dm = world.fake.add_dm(world.ada)
    await world.fake.user_message(dm, "hello there", author=world.ada)
    await wait_for(lambda: answered(runtime, 1))
    assert world.fake.bot_texts(dm) == ["Hello in private."]


async def test_where_threads_are_not_allowed_the_bot_says_why_and_answers_inline(
    world: World, gateway: DiscordGateway, worker: asyncio.Task[None], stand_in: StandInLLM, runtime: Runtime
) -> None:
    stand_in.script(Step(reply="Inline answer."))
    await world.fake.user_message(world.voice, "quick question", author=world.ada, mention_bot=True)
    await wait_for(lambda: answered(runtime, 1))
    assert world.fake.bot_texts(world.voice) == [
        "Threads can't be opened in this kind of channel, so I'll answer right here.",
        "Inline answer.",
    ]


async def test_without_permission_to_open_threads_the_bot_says_so_and_answers_inline(
    world: World, gateway: DiscordGateway, worker: asyncio.Task[None], stand_in: StandInLLM, runtime: Runtime
) -> None:
    world.fake.forbid(world.general, "thread")
    stand_in.script(Step(reply="Still answered."))
    await world.fake.user_message(world.general, "help?", author=world.ada, mention_bot=True)
    await wait_for(lambda: answered(runtime, 1))
    texts = world.fake.bot_texts(world.general)
    assert "Create Public Threads permission" in texts[0]
    assert texts[1:] == ["Still answered."]


@pytest.mark.parametrize("discord_overrides", [{"allowed_roles": "helpers"}], indirect=True)
async def test_only_members_with_an_allowed_role_are_answered(
    world: World, gateway: DiscordGateway, worker: asyncio.Task[None], intake: Intake, runtime: Runtime
) -> None:
    await world.fake.user_message(world.general, "let me in", author=world.ada, mention_bot=True)
    refusal = await wait_for(lambda: world.fake.bot_texts(world.general))
    assert refusal == ["Sorry, I only answer members with certain roles. Ask an administrator for access."]
    assert world.fake.threads_of(world.general) == [], "no thread is opened for a refused message"

    helper = world.fake.user_payload("grace")
    await world.fake.user_message(
        world.general, "I'm a helper", author=helper, mention_bot=True, roles=(world.helpers_role,)
    )
    await wait_for(lambda: answered(runtime, 1))
    assert [e.user_id for e in intake.events] == [helper["id"]]


@pytest.mark.parametrize("discord_overrides", [{"allowed_channels": "999"}], indirect=True)
async def test_a_channel_off_the_allowlist_is_told_so(world: World, gateway: DiscordGateway, intake: Intake) -> None:
    await world.fake.user_message(world.general, "anyone?", author=world.ada, mention_bot=True)
    refusal = await wait_for(lambda: world.fake.bot_texts(world.general))
    assert refusal == [
        "Sorry, I'm not enabled for this channel. Ask an administrator to add this channel to my allowlist."
    ]
    assert intake.events == []


async def test_when_even_sending_is_forbidden_the_gateway_logs_and_keeps_serving(
    world: World, gateway: DiscordGateway, worker: asyncio.Task[None], runtime: Runtime, stand_in: StandInLLM
) -> None:
    world.fake.forbid(world.voice, "send")
    await world.fake.user_message(world.voice, "", author=world.ada, mention_bot=True)  # empty: refused
    await wait_for(lambda: world.fake.calls_to("POST", rf"/channels/{world.voice}/messages"))
    assert world.fake.calls_to("POST", rf"/channels/{world.voice}/messages")[0].status == 403
    stand_in.script(Step(reply="Still here."))
    asked = await world.fake.user_message(world.general, "still there?", author=world.ada, mention_bot=True)
    await wait_for(lambda: answered(runtime, 1))
    assert world.fake.bot_texts(asked["id"]) == ["Still here."]


async def test_a_mention_whose_file_is_refused_leaves_no_thread_behind(
    world: World, gateway: DiscordGateway, intake: Intake
) -> None:
    report = world.fake.add_file("report.pdf", b"%PDF-1.7", "application/pdf")
    await world.fake.user_message(
        world.general, "what is this?", author=world.ada, mention_bot=True, attachments=(report,)
    )
    refusal = await wait_for(lambda: world.fake.bot_texts(world.general))
    assert refusal[0].startswith("I can't digest “report.pdf” (application/pdf)")
    assert world.fake.threads_of(world.general) == [], "refused before a thread was opened"
    assert intake.events == []


@pytest.mark.parametrize("discord_overrides", [{"rate_limit_per_minute": "1"}], indirect=True)
async def test_a_rate_limited_mention_leaves_no_thread_behind(
    world: World, gateway: DiscordGateway, worker: asyncio.Task[None], stand_in: StandInLLM, runtime: Runtime
) -> None:
    stand_in.script(Step(reply="First."))
    await world.fake.user_message(world.general, "one", author=world.ada, mention_bot=True)
    await wait_for(lambda: answered(runtime, 1))
    await world.fake.user_message(world.general, "two", author=world.ada, mention_bot=True)
    refusal = await wait_for(lambda: world.fake.bot_texts(world.general))
    assert refusal[0].startswith("You're sending messages faster than I can take them (1 a minute).")
    assert len(world.fake.threads_of(world.general)) == 1, "only the answered message has a thread"


async def test_edits_and_deletions_update_the_stored_copy(
    world: World, gateway: DiscordGateway, worker: asyncio.Task[None], stand_in: StandInLLM, runtime: Runtime
) -> None:
    first = await world.fake.user_message(
        world.general, "My favourite colour is blue.", author=world.ada, mention_bot=True
    )
    thread = first["id"]
    await wait_for(lambda: answered(runtime, 1))
    second = await world.fake.user_message(thread, "and my pet is a cat", author=world.ada)
    await wait_for(lambda: answered(runtime, 2))

    await world.fake.user_edits(first, f"<@{world.fake.bot_user['id']}> My favourite colour is green.")
    await world.fake.user_deletes(second)
    await wait_for(lambda: _user_texts(runtime, ["My favourite colour is green."]))
    await world.fake.user_message(thread, "What do you know about me?", author=world.ada)
    await wait_for(lambda: len(stand_in.chat_requests()) == 3)
    prompt = [m["content"] for m in stand_in.chat_requests()[-1]["messages"] if m["role"] == "user"]
    assert prompt == ["My favourite colour is green.", "What do you know about me?"]


async def _user_texts(runtime: Runtime, wanted: list[str]) -> bool:
    m = MESSAGES.c
    async with runtime.autocommit.connect() as conn:
        rows = (await conn.execute(select(m.text).where(m.role == "user").order_by(m.id))).scalars().all()
    return list(rows) == wanted


async def test_the_typing_indicator_is_kept_up_until_the_answer_is_posted(
    world: World,
    gateway: DiscordGateway,
    worker: asyncio.Task[None],
    stand_in: StandInLLM,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(DiscordOutbound, "typing_refresh_s", 0.3)  # Discord's 10 s, shortened for the test
    stand_in.first_token_delay = 1.5  # a model that thinks before it writes
    stand_in.script(Step(reply="Thought about it."))
    asked = await world.fake.user_message(world.general, "think hard", author=world.ada, mention_bot=True)
    await wait_for(lambda: answered(runtime, 1))

    def typing() -> list[float]:
        return [c.at for c in world.fake.calls_to("POST", rf"/channels/{asked['id']}/typing")]

    [posted] = [c.at for c in world.fake.calls_to("POST", rf"/channels/{asked['id']}/messages")]
    before = [at for at in typing() if at < posted]
    assert len(before) >= 4, "renewed while the model thought, not shown once and left to lapse"
    seen = len(typing())
    await asyncio.sleep(1.0)
    assert len(typing()) == seen, "and stopped once the answer was posted"


async def test_a_memo_reaction_summarizes_the_thread_once_even_when_delivered_twice(
    world: World, gateway: DiscordGateway, worker: asyncio.Task[None], stand_in: StandInLLM, runtime: Runtime
) -> None:
    stand_in.script(Step(reply="We go with blue."), Step(reply="Summary: blue was chosen."))
    asked = await world.fake.user_message(world.general, "Blue or red? Blue.", author=world.ada, mention_bot=True)
    thread = asked["id"]
    await wait_for(lambda: answered(runtime, 1))
    [answer] = [m.payload for m in world.fake.messages[thread] if m.payload["author"]["bot"]]

    await world.fake.user_reacts(answer, "👍", user=world.ada)  # not configured: nothing
    await world.fake.user_reacts(answer, "📝", user=world.ada)
    await world.fake.user_reacts(answer, "📝", user=world.ada)  # delivered again
    await wait_for(lambda: [t for t in world.fake.bot_texts(thread) if "blue was chosen" in t])
    await asyncio.sleep(0.5)  # room for a second summary, which must not come
    assert world.fake.bot_texts(thread) == ["We go with blue.", "🧵 **Thread summary**\n\nSummary: blue was chosen."]
    assert "Blue or red? Blue." in str(stand_in.chat_requests()[-1]["messages"])


async def test_ask_about_this_from_a_messages_menu_answers_in_its_thread(
    world: World, gateway: DiscordGateway, worker: asyncio.Task[None], stand_in: StandInLLM, runtime: Runtime
) -> None:
    stand_in.script(Step(reply="Hi."), Step(reply="Noted."))
    asked = await world.fake.user_message(world.general, "hello", author=world.ada, mention_bot=True)
    thread = asked["id"]
    await wait_for(lambda: answered(runtime, 1))
    lin = world.fake.user_payload("lin")
    note = await world.fake.user_message(thread, "Budget review by Monday, please.", author=lin)
    await wait_for(lambda: answered(runtime, 2))

    stand_in.script(Step(reply="It asks for a budget review by Monday."))
    await world.fake.message_command(note, "Ask about this", user=world.ada)
    await wait_for(lambda: "It asks for a budget review by Monday." in world.fake.bot_texts(thread))
    assert world.fake.bot_texts(thread) == ["Hi.", "Noted.", "It asks for a budget review by Monday."]
    question = stand_in.chat_requests()[-1]["messages"][-1]["content"]
    assert question == "Explain this message and anything it asks of me:\n\n> Budget review by Monday, please."

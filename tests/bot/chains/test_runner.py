"""Running chains through the real workflow engine (Postgres, Redis, the production worker in this process) and
the stand-in model over HTTP: JSON steps that correct themselves or fail plainly, replays that do not call the
model again, and a question asked in the thread whose answer the chain goes on with."""

from __future__ import annotations

import asyncio
from typing import Any

import yaml
from sqlalchemy import select

from adapters.console.app import ConsoleSession
from adapters.console.inbound import console_thread
from bot.chains.library import load_sources
from bot.chains.runner import run_chain
from bot.chains.scope import load_thread, media_scope, transcript_scope
from bot.chains.spec import Chain, parse_chain
from bot.conversation import post
from bot.ports import Transcript, Utterance
from bot.runtime import Runtime
from bot.threads import ensure_thread
from bot.workflows.errors import StepFailed
from bot.workflows.models import RUNS, STEPS
from bot.workflows.registry import workflow
from bot.workflows.runs import start_run
from bot.workflows.steps import WorkflowContext
from sandbox.openai_server import StandInLLM, Step
from tests.conftest import thread_view, wait_for

# The test workflow finds its chain here by name, as a real one finds it in the worker's library.
CHAINS: dict[str, Chain] = {}

TAGS_CHAIN = """
name: tagger
description: Summarize, then tag.
version: 7
steps:
  - id: summary
    model: gpt-test-mini
    prompt: "Summarize: {{ input }}"
  - id: tags
    system: You tag things.
    prompt: "Tags for: {{ steps.summary }}"
    output:
      json_schema:
        type: object
        required: [tags]
        properties:
          tags: {type: array, items: {type: string}, minItems: 1}
reply: "{{ steps.summary }} [{{ steps.tags.tags | join(', ') }}]"
"""

LIST_CHAIN = """
name: lister
description: A list straight away.
version: 1
steps:
  - id: tags
    prompt: "Tags for {{ input }}"
    output: {json_schema: {type: array, items: {type: string}, minItems: 2}}
reply: "{{ steps.tags | join(' / ') }}"
"""

STANDUP = Transcript(
    text="Morning. We ship on Friday. Dana owns the release notes.",
    duration_s=754.0,
    utterances=(
        Utterance(0, 0.0, 3.2, "Morning."),
        Utterance(1, 65.5, 69.0, "We ship on Friday."),
        Utterance(0, 600.0, 604.0, "Dana owns the release notes."),
    ),
)


def chain_from(text: str) -> Chain:
    return parse_chain(yaml.safe_load(text))


@workflow("test.chain")
async def chain_workflow(ctx: WorkflowContext, input: dict[str, Any]) -> Any:
    """What the /chain command's workflow does with a result: post the reply, or the failure, in the thread."""
    thread = console_thread(input["thread"])
    try:
        result = await run_chain(
            ctx, CHAINS[input["chain"]], input["scope"], thread=thread, thread_id=input["thread_id"], user_id="ada"
        )
    except StepFailed as exc:
        failed = exc
        await ctx.step.run("tell", lambda: post(ctx, "tell", thread, f"⚠️ {failed.user_message}"))
        return {"failed": failed.user_message, "step": failed.step_id}
    if result.reply:
        await ctx.step.run("post", lambda: post(ctx, "post", thread, result.reply))
    return {
        "chain": result.chain,
        "version": result.version,
        "outputs": result.outputs,
        "reply": result.reply,
        "stopped_at": result.stopped_at,
    }


async def start(runtime: Runtime, chain: Chain, scope: dict[str, Any], thread: str = "chains") -> int:
    CHAINS[chain.name] = chain
    thread_id = await ensure_thread(runtime, console_thread(thread))
    started = await start_run(
        runtime, "test.chain", {"chain": chain.name, "scope": scope, "thread": thread, "thread_id": thread_id}
    )
    return started.run_id


async def finished(runtime: Runtime, run_id: int) -> dict[str, Any] | None:
    async with runtime.autocommit.connect() as conn:
        row = dict((await conn.execute(select(RUNS).where(RUNS.c.id == run_id))).mappings().one())
    return row if row["status"] in ("completed", "failed", "cancelled") else None


async def step_attempts(runtime: Runtime, run_id: int) -> dict[str, tuple[str, int]]:
    async with runtime.autocommit.connect() as conn:
        rows = await conn.execute(
            select(STEPS.c.step_id, STEPS.c.status, STEPS.c.attempts).where(STEPS.c.run_id == run_id)
        )
    return {step: (status, attempts) for step, status, attempts in rows}


def user_prompts(stand_in: StandInLLM) -> list[str]:
    return [request["messages"][-1]["content"] for request in stand_in.chat_requests()]


async def test_a_json_step_that_first_answers_badly_corrects_itself(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM
) -> None:
    stand_in.script(
        Step(reply="Ada wants the release on Friday."),
        Step(reply="Sure! Here are your tags: release, friday"),
        Step(reply='```json\n{"tags": ["release", "friday"]}\n```'),
    )
    run_id = await start(runtime, chain_from(TAGS_CHAIN), {"input": "the release plan"})
    run = await wait_for(lambda: finished(runtime, run_id))
    assert run["output"]["outputs"] == {
        "summary": "Ada wants the release on Friday.",
        "tags": {"tags": ["release", "friday"]},
    }
    assert run["output"]["version"] == 7
    posted = await thread_view(runtime, console_thread("chains"))
    assert posted == ["Ada wants the release on Friday. [release, friday]"]

    requests = stand_in.chat_requests()
    assert len(requests) == 3
    assert requests[0]["model"] == "gpt-test-mini", "a step's own model"
    assert requests[0]["messages"] == [{"role": "user", "content": "Summarize: the release plan"}]
    assert "response_format" not in requests[0]
    assert requests[1]["model"] == "gpt-4o", "the configured model when the step names none"
    schema = requests[1]["response_format"]["json_schema"]["schema"]
    assert schema["required"] == ["tags"]
    assert requests[1]["messages"][0]["content"].startswith("You tag things.\n\nAnswer with JSON only")
    retry = requests[2]["messages"]
    assert retry[-2] == {"role": "assistant", "content": "Sure! Here are your tags: release, friday"}
    assert retry[-1]["content"] == (
        "That answer is not valid: the answer was not JSON (Expecting value at line 1 column 1). "
        "Reply again with only the corrected JSON."
    )
    steps = await step_attempts(runtime, run_id)
    assert steps["chain.tags"] == ("completed", 1), "the corrections happen inside one durable step"


async def test_a_json_step_that_stays_wrong_fails_with_the_reason(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM
) -> None:
    stand_in.script(Step(reply="A summary."), Step(reply="{}"), Step(reply='{"tags": []}'), Step(reply='{"tag": 1}'))
    run_id = await start(runtime, chain_from(TAGS_CHAIN), {"input": "x"})
    run = await wait_for(lambda: finished(runtime, run_id))
    message = (
        'The chain "tagger" failed at step "tags": the model\'s answer did not match the schema after 3 attempts '
        "(last error: 'tags' is a required property)"
    )
    assert run["output"] == {"failed": message, "step": "chain.tags"}
    assert await thread_view(runtime, console_thread("chains")) == [f"⚠️ {message}"]
    assert len(stand_in.chat_requests()) == 4, "three attempts at the JSON step, no durable retries after them"
    assert "tags: [] should be non-empty" in stand_in.chat_requests()[3]["messages"][-1]["content"]
    assert (await step_attempts(runtime, run_id))["chain.tags"] == ("failed", 1)


async def test_a_list_schema_travels_wrapped_and_comes_back_bare(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM
) -> None:
    stand_in.script(Step(reply='{"result": ["one"]}'), Step(reply='["one", "two"]'))
    run_id = await start(runtime, chain_from(LIST_CHAIN), {"input": "x"})
    run = await wait_for(lambda: finished(runtime, run_id))
    assert run["output"]["outputs"] == {"tags": ["one", "two"]}
    schema = stand_in.chat_requests()[0]["response_format"]["json_schema"]["schema"]
    assert schema["type"] == "object", "OpenAI's JSON modes answer with objects"
    assert schema["properties"]["result"] == {"type": "array", "items": {"type": "string"}, "minItems": 2}
    assert "not valid: ['one'] is too short." in stand_in.chat_requests()[1]["messages"][-1]["content"]


async def test_a_replay_does_not_call_the_model_again_for_finished_steps(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM
) -> None:
    # The second step's first call fails (a 503): the run is suspended and replayed from the top.
    stand_in.script(Step(reply="The summary."), Step(status=503), Step(reply='{"tags": ["a"]}'))
    run_id = await start(runtime, chain_from(TAGS_CHAIN), {"input": "replay me"})
    run = await wait_for(lambda: finished(runtime, run_id))
    assert run["status"] == "completed"
    assert run["output"]["reply"] == "The summary. [a]"
    prompts = user_prompts(stand_in)
    assert prompts == ["Summarize: replay me", "Tags for: The summary.", "Tags for: The summary."]
    steps = await step_attempts(runtime, run_id)
    assert steps["chain.summary"] == ("completed", 1)
    assert steps["chain.tags"] == ("completed", 2)
    assert steps["chain:start"] == ("completed", 1)


async def test_an_ask_step_waits_for_the_users_answer_and_goes_on_with_it(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM
) -> None:
    library, _ = load_sources([])
    chain = library.require("clarify")
    stand_in.script(Step(reply="What is your budget per person?"), Step(reply="A plan for 40 EUR a head."))
    run_id = await start(runtime, chain, {"input": "plan a team dinner for 12"}, thread="dinner")
    assert await wait_for(lambda: thread_view(runtime, console_thread("dinner"))) == [
        "❓ What is your budget per person?"
    ]
    # Someone edits the chain file while the run waits: this run keeps the definition it started with.
    CHAINS[chain.name] = chain.model_copy(update={"version": 2, "reply": "edited"})
    answered = await ConsoleSession(runtime, user="ada").send("About 40 EUR", "dinner")
    assert answered.status == "completed"
    run = await wait_for(lambda: finished(runtime, run_id))
    assert run["output"]["outputs"]["clarification"] == "About 40 EUR"
    assert run["output"]["version"] == 1
    assert await thread_view(runtime, console_thread("dinner")) == [
        "❓ What is your budget per person?",
        "A plan for 40 EUR a head.",
    ]
    final_prompt = user_prompts(stand_in)[-1]
    assert 'You asked: "What is your budget per person?"\nThey answered: "About 40 EUR"' in final_prompt
    assert len(stand_in.chat_requests()) == 2, "the answer went to the waiting chain, not to a chat turn"


async def test_an_unanswered_question_uses_the_default_or_stops_the_chain(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM
) -> None:
    asking = """
name: asking
description: Ask, then answer.
version: 1
steps:
  - {id: size, ask: "Which size?", timeout: 1, default: "M"}
  - {id: colour, ask: "Size {{ steps.size }}. Which colour?", timeout: 1}
  - {id: never, prompt: "unreached"}
reply: "{{ steps.never }}"
"""
    run_id = await start(runtime, chain_from(asking), {}, thread="shop")
    run = await wait_for(lambda: finished(runtime, run_id))
    assert run["output"]["stopped_at"] == "colour"
    assert run["output"]["outputs"] == {"size": "M"}
    assert await thread_view(runtime, console_thread("shop")) == [
        "Which size?",
        "No answer within 1 second, so I'm going on with: M",
        "Size M. Which colour?",
        'No answer within 1 second, so I stopped the "asking" chain here. Run it again any time.',
    ]
    assert stand_in.chat_requests() == []


async def test_the_media_digest_runs_offline_on_the_stand_in(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM
) -> None:
    library, _ = load_sources([])
    chain = library.require("media-digest")
    scope = {"input": "", "transcript": transcript_scope(STANDUP), "media": media_scope("standup.mp3", "audio", 754)}
    run_id = await start(runtime, chain, scope)
    run = await wait_for(lambda: finished(runtime, run_id))
    outputs = run["output"]["outputs"]
    assert len(outputs["titles"]) == 3, "the stand-in's JSON follows the schema's minItems/maxItems"
    assert all(tag.startswith("stand-in ") for tag in outputs["tags"]), "and its patterns, where it can"
    assert outputs["chapters"][0].keys() == {"start", "title"}
    reply = run["output"]["reply"]
    assert reply.startswith("🎬 **standup.mp3** · 12:34\n\n**Title ideas**\n- [stand-in] ")
    assert "**Chapters**\n`00:00` [stand-in]" in reply
    assert len(stand_in.chat_requests()) == 5, "each step once: every JSON answer matched at the first attempt"
    transcript_prompt = user_prompts(stand_in)[0]
    assert "[01:05] Speaker 2: We ship on Friday." in transcript_prompt


async def test_the_thread_summary_reads_the_thread_it_runs_in(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM
) -> None:
    session = ConsoleSession(runtime, user="ada")
    stand_in.script(Step(reply="Friday works for me."))
    await session.send("Can we ship on Friday?", "release")
    thread_id = await ensure_thread(runtime, console_thread("release"))
    thread = await load_thread(runtime, thread_id)
    assert thread == [
        {"role": "user", "user": "ada", "text": "Can we ship on Friday?"},
        {"role": "assistant", "user": "assistant", "text": "Friday works for me."},
    ]
    library, _ = load_sources([])
    stand_in.script(Step(reply="**In short:** shipping Friday, agreed."))
    run_id = await start(runtime, library.require("tldr"), {"thread": thread, "input": ""}, thread="release")
    run = await wait_for(lambda: finished(runtime, run_id))
    assert run["output"]["reply"] == "🧵 **Thread summary**\n\n**In short:** shipping Friday, agreed."
    prompt = user_prompts(stand_in)[-1]
    assert "<thread>\nada: Can we ship on Friday?\nassistant: Friday works for me.\n</thread>" in prompt


async def test_missing_inputs_and_bad_data_fail_with_what_is_wrong(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM
) -> None:
    library, _ = load_sources([])
    run_id = await start(runtime, library.require("summary"), {"input": ""})
    run = await wait_for(lambda: finished(runtime, run_id))
    assert run["output"] == {"failed": 'The chain "thread-summary" needs a thread to read.', "step": "chain:start"}

    # The reply reads a field the JSON step's schema does not promise; only running it can show that.
    reads_a_field = TAGS_CHAIN.replace("steps.tags.tags", "steps.tags.labels").replace("tagger", "bad-field")
    run_id = await start(runtime, chain_from(reads_a_field), {"input": "x"})
    run = await wait_for(lambda: finished(runtime, run_id))
    assert run["output"]["failed"] == (
        "The chain \"bad-field\" could not fill in the reply (reply): 'dict object' has no attribute 'labels'"
    )


# The worker fixture runs these beside the bot's own workflows.
TEST_WORKFLOWS = (chain_workflow,)

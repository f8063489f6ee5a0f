"""`/chain` and `/transcribe`: run a prompt chain on demand in a thread, or post the transcript of the file shared
there most recently. Both start durable runs; the command itself only validates and answers at once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog

from bot.chains.library import format_chain_list, load_library
from bot.chains.runner import run_chain
from bot.chains.scope import load_thread, media_scope, transcript_scope
from bot.chains.spec import Chain
from bot.commands import Command, CommandReply
from bot.errors import ConfigurationError
from bot.events import SlashCommand, ThreadRef
from bot.failures import failure_reason
from bot.guards import CHAIN_RUN as CHAIN_RUN_GUARDS
from bot.guards import command_request
from bot.mail.delivery import deliver_result
from bot.media.attach import upload_transcript
from bot.media.transcripts import load_transcript
from bot.runtime import Runtime
from bot.stores.media import latest_media, load_media
from bot.stores.messages import last_message_id
from bot.streaming import open_reply
from bot.threads import ensure_thread
from bot.workflows.errors import NonRetriableError, StepFailed
from bot.workflows.registry import workflow
from bot.workflows.runs import start_run
from bot.workflows.steps import WorkflowContext

log = structlog.get_logger(__name__)
CHAIN_RUN = "chain_run"
SEND_TRANSCRIPT = "send_transcript"


@dataclass(frozen=True, slots=True)
class ChainRunInput:
    chain: str  # its name: the definition is read when the run begins and kept in its first step
    thread: ThreadRef
    thread_id: int
    user_id: str
    text: str


@dataclass(frozen=True, slots=True)
class SendTranscriptInput:
    thread: ThreadRef
    media_id: int


async def chain_command(runtime: Runtime, command: SlashCommand) -> CommandReply:
    words = command.text.strip().split(maxsplit=1)
    verb = words[0].lower() if words else ""
    try:
        library = load_library(runtime.settings)
    except ConfigurationError as exc:
        log.error("chains failed to load", error=str(exc))
        return CommandReply("The chains could not be loaded; an operator has been told.", accepted=False)
    if verb in ("", "help"):
        return CommandReply(f"{CHAIN.help}\n\n{format_chain_list(library)}", accepted=bool(verb))
    if verb == "list":
        return CommandReply(format_chain_list(library))
    rest = words[1] if len(words) > 1 else ""
    if verb == "run":
        name, _, text = rest.partition(" ")
    else:  # `/chain NAME text` works too
        name, text = verb, rest
    chain = library.require(name)
    await CHAIN_RUN_GUARDS.admit(runtime, command_request(command))
    thread_id = await ensure_thread(runtime, command.thread)
    started = await start_run(
        runtime,
        chain_run,
        ChainRunInput(chain.name, command.thread, thread_id, command.user_id, text.strip()),
        dedupe_key=f"chain:{command.thread.platform}:{command.thread.workspace_id}:{command.event_id}",
        thread_id=thread_id,
        user_id=command.user_id,
        description=f"/chain run {chain.name}",
    )
    log.info("chain run started", chain=chain.name, run_id=started.run_id, created=started.created)
    return CommandReply(f"Running “{chain.name}” (v{chain.version}); the result will appear in the thread.")


def needs_transcript(chain: Chain) -> bool:
    return "transcript" in chain.needs


@workflow(
    CHAIN_RUN,
    input=ChainRunInput,
    description="Run a prompt chain in a thread (/chain run NAME) and post its result there.",
)
async def chain_run(ctx: WorkflowContext, input: ChainRunInput) -> dict[str, Any]:
    thread = input.thread
    platform = ctx.platform(thread)
    try:
        chain = await ctx.step.run("chain", lambda: resolve_chain(ctx, input), result=Chain)
        media_id = await ctx.step.run("media", lambda: media_for(ctx, input, chain))
        # The thread as it stood when the run began: a resumed run's later steps see what its first ones saw.
        up_to = await ctx.step.run("snapshot", lambda: last_message_id(ctx.runtime, input.thread_id))
        scope = await chain_scope(ctx.runtime, input, media_id, up_to)
        result = await run_chain(ctx, chain, scope, thread=thread, thread_id=input.thread_id, user_id=input.user_id)

        async def reply() -> list[str]:
            stream = open_reply(platform, thread, ctx.key("reply"))
            await stream.feed(result.reply)
            return await stream.finish()

        posted = await ctx.step.run("reply", reply)
        if chain.deliver.email is not None and result.stopped_at is None:
            await deliver_result(
                ctx, chain, result.view, result.outputs, result.reply,
                thread=thread, thread_id=input.thread_id, user_id=input.user_id, up_to=up_to,
            )  # fmt: skip
    except StepFailed as exc:
        failure = exc
        text = f"⚠️ The chain “{input.chain}” failed: {failure_reason(failure)}"

        async def tell() -> str:
            log.warning("chain run failed", run_id=ctx.run_id, error=failure.error)
            sent = await platform.post_message(thread, text, idempotency_key=ctx.key("tell-failure"))
            return sent.message_id

        await ctx.step.run("tell-failure", tell, final=True)
        raise
    return {"chain": result.chain, "version": result.version, "message_ids": posted}


async def chain_scope(runtime: Runtime, input: ChainRunInput, media_id: int | None, up_to: int) -> dict[str, Any]:
    thread = await load_thread(runtime, input.thread_id, up_to=up_to)
    scope: dict[str, Any] = {"input": input.text, "thread": thread}
    if media_id is not None:
        media = await load_media(runtime, media_id)
        async with runtime.autocommit.connect() as conn:
            transcript = await load_transcript(conn, media_id)
        if transcript is not None:
            scope["transcript"] = transcript_scope(transcript)
        scope["media"] = media_scope(media["name"], media["kind"], media["duration_s"])
    return scope


async def resolve_chain(ctx: WorkflowContext, input: ChainRunInput) -> Chain:
    """Kept whole in the step, so a replay runs the version this run started with even if the file changed."""
    chain = load_library(ctx.runtime.settings).get(input.chain)
    if chain is None:
        raise NonRetriableError(f"chain {input.chain!r} is gone", f"the chain “{input.chain}” no longer exists.")
    return chain


async def media_for(ctx: WorkflowContext, input: ChainRunInput, chain: Chain) -> int | None:
    if not needs_transcript(chain):
        return None
    media = await latest_media(ctx.runtime, input.thread_id, input.thread)
    if media is None:
        raise NonRetriableError(
            "no media in the thread",
            f"“{chain.name}” works on a recording or transcript: share an audio, video or text file here first.",
        )
    if media["transcript"] is None:
        raise NonRetriableError(
            f"media {media['id']} is {media['status']} without a transcript",
            f"“{media['name']}” has no transcript"
            + (f" ({media['error']})" if media["error"] else " yet")
            + ". Share it again, or wait until its digest is posted.",
        )
    return int(media["id"])


async def transcribe_command(runtime: Runtime, command: SlashCommand) -> CommandReply:
    await CHAIN_RUN_GUARDS.admit(runtime, command_request(command))
    thread_id = await ensure_thread(runtime, command.thread)
    media = await latest_media(runtime, thread_id, command.thread)
    if media is None:
        return CommandReply(
            "There is no file here to transcribe. Share an audio or video file with me (mention me in the message) "
            "and I'll transcribe and digest it.",
            accepted=False,
        )
    if media["transcript"] is None and media["status"] == "failed":
        return CommandReply(f"“{media['name']}” could not be transcribed: {media['error']}", accepted=False)
    if media["transcript"] is None:
        return CommandReply(f"“{media['name']}” is still being processed; its transcript will follow the digest.")
    await start_run(
        runtime,
        send_transcript,
        SendTranscriptInput(command.thread, media["id"]),
        dedupe_key=f"transcribe:{command.thread.platform}:{command.thread.workspace_id}:{command.event_id}",
        thread_id=thread_id,
        user_id=command.user_id,
        description=f"/transcribe {media['name']}",
    )
    return CommandReply(f"Posting the transcript of “{media['name']}” in the thread.")


@workflow(
    SEND_TRANSCRIPT, input=SendTranscriptInput, description="Attach a stored transcript to a thread (/transcribe)."
)
async def send_transcript(ctx: WorkflowContext, input: SendTranscriptInput) -> dict[str, Any]:
    thread = input.thread
    platform = ctx.platform(thread)

    async def attach() -> str:
        media = await load_media(ctx.runtime, input.media_id)
        async with ctx.runtime.autocommit.connect() as conn:
            transcript = await load_transcript(conn, input.media_id)
        if transcript is None:
            raise NonRetriableError("no transcript", f"“{media['name']}” has no transcript.")
        return await upload_transcript(platform, thread, media["name"], transcript, ctx.key("attach"))

    try:
        return {"message_id": await ctx.step.run("attach", attach)}
    except StepFailed as exc:
        failure = exc

        async def tell() -> str:
            text = f"⚠️ I couldn't post the transcript: {failure_reason(failure)}"
            return (await platform.post_message(thread, text, idempotency_key=ctx.key("tell-failure"))).message_id

        await ctx.step.run("tell-failure", tell, final=True)
        raise


CHAIN = Command("chain", "Run a prompt chain.", "/chain list | /chain run NAME [text]", chain_command)
TRANSCRIBE = Command(
    "transcribe", "Post the transcript of the file shared most recently here.", "/transcribe", transcribe_command
)

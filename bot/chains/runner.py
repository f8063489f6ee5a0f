"""Running a chain inside a workflow: each chain step is a durable step (`<prefix>.<step id>`), so a resumed run
skips what is done and never calls the model twice for it. The chain's definition is kept with the run when it
starts, so an edit to the file while a run waits (an `ask` step can wait a day) does not change that run."""

from __future__ import annotations

import json
from collections.abc import Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from jsonschema import Draft202012Validator, ValidationError
from jsonschema.exceptions import best_match
from jsonschema.validators import validator_for

from bot.chains.scope import fit_scope
from bot.chains.spec import AskStep, Chain, LLMStep
from bot.chains.templates import compile_template
from bot.conversation import ask_in_thread
from bot.costs.metered import metered
from bot.costs.usage import Payer
from bot.errors import TransientUpstreamError
from bot.events import ThreadRef
from bot.followups.parse import describe_duration
from bot.ports import ChatMessage
from bot.workflows.errors import NonRetriableError
from bot.workflows.steps import WorkflowContext

# OpenAI's JSON modes answer with an object; a chain may ask for a list or a string, so those travel wrapped.
ENVELOPE_KEY = "result"
_MAX_ECHO_CHARS = 4000  # of a wrong answer sent back to the model so it can correct itself


@dataclass(frozen=True, slots=True)
class ChainResult:
    chain: str
    version: int | str
    outputs: dict[str, Any]  # step id -> its output: str for text and ask steps, parsed JSON for JSON steps
    reply: str  # the rendered `reply`, for the caller to post ("" when the chain stopped)
    attach_transcript: bool = False
    # An `ask` step nobody answered in time and that had no default: the chain stopped there (and said so).
    stopped_at: str | None = None
    # What the templates saw (input, transcript, thread, media, now; without `steps`), for `deliver:` templates.
    view: dict[str, Any] = field(default_factory=dict)


def missing_inputs(chain: Chain, scope: Mapping[str, Any]) -> list[str]:
    """What the chain `needs` that the scope lacks (a command can refuse before starting a run)."""
    missing: list[str] = []
    for need in chain.needs:
        value = scope.get(need)
        if value is None or (need == "input" and not str(value).strip()):
            missing.append(need)
    return missing


async def run_chain(
    ctx: WorkflowContext,
    chain: Chain,
    scope: dict[str, Any],
    *,
    thread: ThreadRef,
    thread_id: int,
    user_id: str,
    prefix: str = "chain",
) -> ChainResult:
    """Run `chain` with `scope` (input, transcript, thread, media), asking `user_id` in `thread` for `ask` steps.

    Durable steps: `<prefix>:start` (the chain's definition and `now`, kept for replays), `<prefix>.<step id>`
    per step (an ask step: `.question`, `.ask`, `.answer`, `.nudge` under it) and `<prefix>:reply`. `scope`
    must be the same on every replay of the run (build it in an earlier step). A step that fails for good
    raises `StepFailed` whose `user_message` says which chain and step, for the caller to post."""
    settings = ctx.runtime.settings

    async def start() -> dict[str, Any]:
        missing = missing_inputs(chain, scope)
        if missing:
            raise NonRetriableError(
                f"chain {chain.name}: scope lacks {missing}",
                user_message=f'The chain "{chain.name}" needs {_needs_text(missing)}.',
            )
        return {"chain": chain.model_dump(mode="json"), "now": datetime.now(UTC).isoformat(timespec="seconds")}

    # ":" cannot occur in a step id, so these never collide with a chain step called "start" or "reply".
    started = await ctx.step.run(f"{prefix}:start", start)
    began_with = Chain.model_validate(started["chain"])  # the definition this run began with, even after an edit
    view = _view(scope, started["now"], settings.chain_input_max_chars)
    return await _run_steps(ctx, began_with, view, prefix, thread, thread_id, user_id)


async def _run_steps(
    ctx: WorkflowContext,
    chain: Chain,
    view: dict[str, Any],
    prefix: str,
    thread: ThreadRef,
    thread_id: int,
    user_id: str,
) -> ChainResult:
    outputs: dict[str, Any] = {}
    for step in chain.steps:
        step_id = f"{prefix}.{step.id}"
        if isinstance(step, AskStep):
            answer = await _ask(ctx, chain, step, view, outputs, step_id, thread, thread_id, user_id)
            if answer is None:
                return ChainResult(
                    chain.name, chain.version, outputs, "", chain.attach_transcript, stopped_at=step.id, view=view
                )
            outputs[step.id] = answer
        else:
            call = partial(run_llm_step, ctx, Payer.of(thread, user_id), chain, step, {**view, "steps": dict(outputs)})
            outputs[step.id] = await ctx.step.run(step_id, call, max_attempts=ctx.runtime.settings.llm_max_attempts)

    async def reply() -> str:
        return render_reply(chain, {**view, "steps": outputs})

    text = await ctx.step.run(f"{prefix}:reply", reply)
    return ChainResult(chain.name, chain.version, outputs, text, chain.attach_transcript, view=view)


def _view(scope: Mapping[str, Any], now: str, max_chars: int) -> dict[str, Any]:
    """What templates see: the scope cut to size, `now` fixed when the run began (a replay renders the same
    prompts), `input` always there, and `media` for a transcript given without one (a pasted text)."""
    view = {**fit_scope(scope, max_chars), "now": now}
    view["input"] = str(view.get("input") or "")
    transcript = view.get("transcript")
    if isinstance(transcript, Mapping) and not view.get("media"):
        view["media"] = {"name": "the transcript", "kind": "text", "duration": transcript.get("duration")}
    return view


def render_reply(chain: Chain, scope: Mapping[str, Any]) -> str:
    """The chain's `reply` with the scope and every step's output (`scope["steps"]`)."""
    return _render(chain, None, "reply", chain.reply, scope).strip()


async def run_llm_step(
    ctx: WorkflowContext, payer: Payer, chain: Chain, step: LLMStep, scope: Mapping[str, Any]
) -> Any:
    """One model call (or, for a JSON step, up to CHAIN_JSON_ATTEMPTS calls, each told what was wrong with the
    last answer). Transient model errors propagate, so the durable step retries with backoff."""
    settings = ctx.runtime.settings
    system = _render(chain, step, "system", step.system, scope) if step.system else ""
    prompt = _render(chain, step, "prompt", step.prompt, scope)
    schema = step.json_schema
    max_tokens = step.max_tokens or settings.max_reply_tokens
    if schema is None:
        messages = [ChatMessage("system", system)] if system else []
        text = await _complete(ctx, payer, [*messages, ChatMessage("user", prompt)], max_tokens, step.model, None)
        if not text.strip():
            raise TransientUpstreamError("llm", f"empty answer at chain step {step.id!r}")
        return text.strip()

    wire_schema = _envelope(schema)
    instructions = "Answer with JSON only (no prose, no code fences) that matches this JSON schema:\n" + json.dumps(
        wire_schema, ensure_ascii=False
    )
    messages = [ChatMessage("system", f"{system}\n\n{instructions}" if system else instructions)]
    messages.append(ChatMessage("user", prompt))
    validator = validator_for(schema, default=Draft202012Validator)(schema)
    attempts = max(1, settings.chain_json_attempts)
    error = ""
    for _ in range(attempts):
        text = await _complete(ctx, payer, messages, max_tokens, step.model, wire_schema)
        value, error = _read_json(text, validator, wrapped=wire_schema is not schema)
        if not error:
            return value
        messages += [
            ChatMessage("assistant", text[:_MAX_ECHO_CHARS]),
            ChatMessage("user", f"That answer is not valid: {error}. Reply again with only the corrected JSON."),
        ]
    raise NonRetriableError(
        f"chain {chain.name} step {step.id}: no valid JSON after {attempts} attempts: {error}",
        user_message=(
            f'The chain "{chain.name}" failed at step "{step.id}": the model\'s answer did not match the schema '
            f"after {attempts} attempt{'s' if attempts != 1 else ''} (last error: {error})"
        ),
    )


async def _ask(
    ctx: WorkflowContext,
    chain: Chain,
    step: AskStep,
    view: Mapping[str, Any],
    outputs: dict[str, Any],
    step_id: str,
    thread: ThreadRef,
    thread_id: int,
    user_id: str,
) -> str | None:
    async def question() -> str:
        return _render(chain, step, "ask", step.ask, {**view, "steps": dict(outputs)}).strip()

    text = await ctx.step.run(f"{step_id}.question", question)
    wait = describe_duration(timedelta(seconds=step.timeout))
    if step.default is not None:
        nudge = f"No answer within {wait}, so I'm going on with: {_clip(step.default)}"
    else:
        nudge = f'No answer within {wait}, so I stopped the "{chain.name}" chain here. Run it again any time.'
    answer = await ask_in_thread(
        ctx, step_id, thread, thread_id=thread_id, user_id=user_id, question=text, timeout_s=step.timeout, nudge=nudge
    )
    return answer if answer is not None else step.default


async def _complete(
    ctx: WorkflowContext,
    payer: Payer,
    messages: list[ChatMessage],
    max_tokens: int,
    model: str | None,
    schema: dict[str, Any] | None,
) -> str:
    parts: list[str] = []
    async with (
        metered(ctx, payer, "chain") as usage,
        aclosing(
            ctx.deps.llm.stream_chat(messages, max_tokens=max_tokens, model=model, json_schema=schema, usage=usage)
        ) as deltas,
    ):
        async for delta in deltas:
            parts.append(delta)
    return "".join(parts)


def _envelope(schema: dict[str, Any]) -> dict[str, Any]:
    if schema.get("type") == "object":
        return schema
    wrapped: dict[str, Any] = {
        "type": "object",
        "properties": {ENVELOPE_KEY: schema},
        "required": [ENVELOPE_KEY],
        "additionalProperties": False,
    }
    if "$defs" in schema:
        # Local references ("#/$defs/x") resolve against the root, which is now the envelope.
        wrapped["$defs"] = schema["$defs"]
    return wrapped


def _read_json(text: str, validator: Any, *, wrapped: bool) -> tuple[Any, str]:
    """The answer's value and "" when it matches, else None and what is wrong, said for the model and the user."""
    raw = _strip_fences(text)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        return None, f"the answer was not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    if wrapped and isinstance(value, dict) and set(value) == {ENVELOPE_KEY}:
        value = value[ENVELOPE_KEY]
    failure: ValidationError | None = best_match(validator.iter_errors(value))
    if failure is None:
        return value, ""
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in failure.absolute_path).lstrip(".")
    # jsonschema's messages quote the offending value, which can be the model's whole answer: keep them short.
    return None, _clip(f"{where}: {failure.message}" if where else failure.message)


def _strip_fences(text: str) -> str:
    # Models asked for "JSON only" still wrap it in ```json fences now and then; the content is what counts.
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else ""
        stripped = stripped.rsplit("```", 1)[0]
    return stripped.strip()


def _render(chain: Chain, step: LLMStep | AskStep | None, field: str, source: str, scope: Mapping[str, Any]) -> str:
    where = f'step "{step.id}"' if step is not None else "the reply"
    return render_field(chain, where, field, source, scope)


def render_field(
    chain: Chain, where: str, field: str, source: str, scope: Mapping[str, Any], *, html: bool = False
) -> str:
    """One template of the chain rendered; any failure is the chain's (NonRetriableError naming `where` and `field`)."""
    try:
        return compile_template(source, html=html).render(**scope)
    # Besides Jinja's own errors, a template can raise whatever Python raises for a bad operation on the data
    # (`steps.x + 1` on a string): all of them are the chain's fault, not a reason to retry.
    except Exception as exc:
        raise NonRetriableError(
            f"chain {chain.name}: {where}: {field}: {exc}",
            user_message=f'The chain "{chain.name}" could not fill in {where} ({field}): {exc}',
        ) from exc


def _needs_text(missing: list[str]) -> str:
    what = {
        "transcript": "a transcript: share an audio or video file first",
        "thread": "a thread to read",
        "input": "some text after its name",
    }
    return " and ".join(what[need] for need in missing)


def _clip(text: str) -> str:
    return text if len(text) <= 200 else text[:197] + "…"

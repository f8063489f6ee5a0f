"""What a chain file may say, checked in full when it is loaded: structure (pydantic), JSON schemas (jsonschema),
templates (they compile and use only variables and earlier steps that exist). Each problem names the step and
the field, so `bot.chains.library` can say which file and line."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from jsonschema import Draft202012Validator, SchemaError
from jsonschema.validators import validator_for
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StrictInt,
    Tag,
    ValidationError,
    field_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from bot.chains.templates import check_template, suggest
from bot.followups.parse import DURATION_UNITS

NAME_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
# Step ids are read in templates as `steps.<id>`, so they must be identifiers (no hyphens).
STEP_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
FILE_KINDS = ("audio", "video", "text")
NEEDS = ("transcript", "thread", "input")
# `/chain list` and `/chain run` are the command's own words; a chain alias may not take them.
RESERVED_COMMANDS = frozenset({"list", "run", "help"})
MAX_ASK_TIMEOUT_S = 30 * 86400
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$")
# Pydantic puts the tag of a tagged union into error locations; they are not fields, so messages leave them out.
_TAGS = frozenset({"llm-step", "ask-step", "text-output", "json-output"})


def _duration(value: Any) -> Any:
    """'1 day', '2 hours', '90 s' or a number of seconds."""
    if isinstance(value, str):
        match = _DURATION_RE.match(value.lower())
        if match is None or match[2] not in DURATION_UNITS:
            raise PydanticCustomError(
                "duration", 'write a duration like "30 minutes", "2 hours", "1 day", or a number of seconds'
            )
        return float(match[1]) * DURATION_UNITS[match[2]]
    return value


def _version(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | str) or (isinstance(value, str) and not value.strip()):
        raise PydanticCustomError("version", 'must be a whole number (3) or a text ("2024-06-01")')
    return value


def _some_steps(value: Any) -> Any:
    # Checked before the items: pydantic would otherwise also call a list whose items failed "too short".
    if isinstance(value, list | tuple) and not value:
        raise PydanticCustomError("no_steps", "a chain needs at least one step")
    return value


Duration = Annotated[float, BeforeValidator(_duration), Field(gt=0, le=MAX_ASK_TIMEOUT_S)]
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=64)]


class _Strict(BaseModel):
    # extra="forbid": a misspelt field ("promt") is an error, not silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Triggers(_Strict):
    commands: tuple[Name, ...] = ()
    file_types: tuple[str, ...] = ()

    @field_validator("commands")
    @classmethod
    def _not_reserved(cls, commands: tuple[str, ...]) -> tuple[str, ...]:
        taken = sorted(set(commands) & RESERVED_COMMANDS)
        if taken:
            raise PydanticCustomError(
                "reserved", "{words} cannot be an alias: /chain uses it itself", {"words": ", ".join(map(repr, taken))}
            )
        return commands

    @field_validator("file_types")
    @classmethod
    def _kinds_or_extensions(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        normalised = tuple(value.strip().lower() for value in values)
        for value in normalised:
            if value not in FILE_KINDS and not re.fullmatch(r"\.[a-z0-9]{1,10}", value):
                raise PydanticCustomError(
                    "file_type",
                    "'{value}' is neither a kind of file (audio, video, text) nor an extension like '.vtt'",
                    {"value": value},
                )
        return normalised


class JsonOutput(_Strict):
    json_schema: dict[str, Any]

    @field_validator("json_schema")
    @classmethod
    def _valid_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        # The schema's own "$schema" picks the draft; without one, the current draft (2020-12).
        try:
            validator_for(schema, default=Draft202012Validator).check_schema(schema)
        except SchemaError as exc:
            where = _json_path(exc.path)
            raise PydanticCustomError(
                "json_schema",
                "{message}{where}",
                {"message": exc.message, "where": f" (at {where})" if where else "", "schema_path": list(exc.path)},
            ) from None
        return schema


def _output_tag(value: Any) -> str | None:
    if value == "text":
        return "text-output"
    if isinstance(value, dict | JsonOutput):
        return "json-output"
    return None


Output = Annotated[
    Annotated[Literal["text"], Tag("text-output")] | Annotated[JsonOutput, Tag("json-output")],
    Discriminator(
        _output_tag,
        custom_error_type="output",
        custom_error_message='must be "text" or {json_schema: {...}}',
    ),
]


class LLMStep(_Strict):
    """A call to the model: `prompt` (and `system`) rendered with the scope and earlier steps' outputs."""

    id: Annotated[str, Field(pattern=STEP_ID_PATTERN, max_length=64)]
    model: str | None = None
    system: str | None = None
    prompt: Annotated[str, Field(min_length=1)]
    output: Output = "text"
    max_tokens: Annotated[int, Field(gt=0, le=200_000)] | None = None

    @property
    def json_schema(self) -> dict[str, Any] | None:
        return self.output.json_schema if isinstance(self.output, JsonOutput) else None


class AskStep(_Strict):
    """A question to the user in the thread; its output is their answer (or `default` after `timeout`)."""

    id: Annotated[str, Field(pattern=STEP_ID_PATTERN, max_length=64)]
    ask: Annotated[str, Field(min_length=1)]
    timeout: Duration = 86400.0
    default: str | None = None


def _step_tag(value: Any) -> str:
    if isinstance(value, AskStep) or (isinstance(value, dict) and "ask" in value):
        return "ask-step"
    return "llm-step"


ChainStep = Annotated[
    Annotated[LLMStep, Tag("llm-step")] | Annotated[AskStep, Tag("ask-step")], Discriminator(_step_tag)
]


class EmailRecipients(_Strict):
    """Who a chain's email goes to: the thread's people who set `/prefs set email=...`, the addresses written in
    the chain's input (`/chain run email dana@acme.com ...`), and addresses fixed in the file."""

    prefs: bool = False
    input: bool = False
    addresses: tuple[Annotated[str, Field(min_length=3, max_length=254)], ...] = ()


class EmailDelivery(_Strict):
    """`deliver: email:` sends the chain's result by email once the reply is posted. Templates see what the reply
    sees, plus `reply` (the rendered reply). `text` defaults to the reply; `html` to it as paragraphs."""

    to: EmailRecipients
    subject: Annotated[str, Field(min_length=1)]
    text: Annotated[str, Field(min_length=1)] = "{{ reply }}"
    html: Annotated[str, Field(min_length=1)] = "{{ reply | paragraphs }}"
    # Ask in the thread first ("Send as email"): the run waits for the user's "send" up to `confirm_timeout`.
    confirm: bool = False
    confirm_timeout: Duration = 86400.0


class Deliver(_Strict):
    email: EmailDelivery | None = None


DELIVER_TEMPLATE_FIELDS = ("subject", "text", "html")


class Chain(_Strict):
    name: Name
    description: Annotated[str, Field(min_length=1)]
    # Recorded with each run, so an operator can tell which edit of the file a run used.
    version: Annotated[StrictInt | Annotated[str, Field(max_length=64)], BeforeValidator(_version)]
    triggers: Triggers = Triggers()
    needs: tuple[Literal["transcript", "thread", "input"], ...] = ()
    steps: Annotated[tuple[ChainStep, ...], BeforeValidator(_some_steps)]
    reply: Annotated[str, Field(min_length=1)]
    attach_transcript: bool = False
    deliver: Deliver = Deliver()

    def step(self, step_id: str) -> LLMStep | AskStep:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)


@dataclass(frozen=True, slots=True)
class ChainProblem:
    """One thing wrong with a chain file. `path` locates it in the document (for the file's line number);
    `template_line` is the line inside a template field, when the problem is in one."""

    path: tuple[str | int, ...]
    step: str | None
    field: str
    message: str
    template_line: int | None = None
    hint: str = ""

    def describe(self, line: str = "") -> str:
        """'step "x": field: message (line N); hint', where `line` is what the caller knows of the position."""
        where = f'step "{self.step}": ' if self.step is not None else ""
        text = f"{where}{self.field}: {self.message}" if self.field else f"{where}{self.message}"
        if line:
            text += f" ({line})"
        return f"{text}; {self.hint}" if self.hint else text


class ChainInvalid(ValueError):
    def __init__(self, problems: list[ChainProblem]) -> None:
        super().__init__("; ".join(problem.describe() for problem in problems))
        self.problems = problems


def parse_chain(data: Any) -> Chain:
    """A checked Chain from a YAML document's data, or `ChainInvalid` with every problem found."""
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        message = f"a chain file holds a mapping (name, description, version, steps, reply), not {kind}"
        raise ChainInvalid([ChainProblem((), None, "", message)])
    problems: list[ChainProblem] = []
    chain: Chain | None = None
    try:
        chain = Chain.model_validate(data)
    except ValidationError as exc:
        problems = [_from_pydantic(error, data) for error in exc.errors()]
    # Templates and ids are checked on the raw data too, so one bad field does not hide problems elsewhere;
    # a field the structure check already refused is not reported twice.
    refused = [problem.path for problem in problems]
    problems += [
        problem
        for problem in _semantic_problems(data)
        if not any(problem.path[: len(path)] == path for path in refused)
    ]
    if problems or chain is None:
        raise ChainInvalid(problems)
    return chain


def _semantic_problems(data: dict[str, Any]) -> Iterator[ChainProblem]:
    """What the structure cannot say: unique step ids, templates that compile and only look back."""
    steps_value, needs_value = data.get("steps"), data.get("needs")
    raw_steps: list[Any] = steps_value if isinstance(steps_value, list) else []
    needs = [need for need in needs_value if isinstance(need, str)] if isinstance(needs_value, list) else []
    order: dict[str, int] = {}
    for index, raw in enumerate(raw_steps):
        step_id = raw.get("id") if isinstance(raw, dict) else None
        if not isinstance(step_id, str):
            continue
        if step_id in order:
            yield ChainProblem(
                ("steps", index, "id"),
                step_id,
                "id",
                f"another step (#{order[step_id] + 1}) has this id already; step ids must be unique",
            )
        else:
            order[step_id] = index
    for index, raw in enumerate(raw_steps):
        if not isinstance(raw, dict):
            continue
        for field in ("ask",) if _step_tag(raw) == "ask-step" else ("system", "prompt"):
            source = raw.get(field)
            if isinstance(source, str):
                where = ("steps", index, field)
                yield from _template_problems(source, needs, where, _step_label(data, index), field, order, index)
    reply = data.get("reply")
    if isinstance(reply, str):
        yield from _template_problems(reply, needs, ("reply",), None, "reply", order, len(raw_steps))
    yield from _deliver_problems(data, needs, order, len(raw_steps))
    if data.get("attach_transcript") is True and "transcript" not in needs:
        yield ChainProblem(
            ("attach_transcript",), None, "attach_transcript", "needs a transcript: add 'transcript' to `needs`"
        )


def _deliver_problems(
    data: dict[str, Any], needs: list[str], order: dict[str, int], position: int
) -> Iterator[ChainProblem]:
    """The email templates of `deliver:` see every step (they run after the last) and the rendered `reply`."""
    deliver = data.get("deliver")
    email = deliver.get("email") if isinstance(deliver, dict) else None
    if not isinstance(email, dict):
        return
    for field in DELIVER_TEMPLATE_FIELDS:
        source = email.get(field)
        if isinstance(source, str):
            where = ("deliver", "email", field)
            yield from _template_problems(
                source, needs, where, None, f"deliver.email.{field}", order, position, extra=("reply",)
            )


def _template_problems(
    source: str,
    needs: list[str],
    path: tuple[str | int, ...],
    step: str | None,
    field: str,
    order: dict[str, int],
    position: int,
    *,
    extra: tuple[str, ...] = (),
) -> Iterator[ChainProblem]:
    problems, references = check_template(source, needs=needs, extra=extra)
    for problem in problems:
        yield ChainProblem(path, step, field, problem.message, problem.line, problem.hint)
    for ref in references:
        at = order.get(ref.step_id)
        hint = ""
        if at is None:
            message = f"unknown step 'steps.{ref.step_id}'"
            hint = suggest(ref.step_id, [known for known, at in order.items() if at < position], "earlier steps")
        elif at == position:
            message = f"'steps.{ref.step_id}' is this step's own output, which does not exist yet"
        elif at > position:
            message = f"'steps.{ref.step_id}' runs later (step #{at + 1})"
            hint = "a step can only use the steps before it"
        else:
            continue
        yield ChainProblem(path, step, field, message, ref.line, hint)


def _from_pydantic(error: ErrorDetails, data: dict[str, Any]) -> ChainProblem:
    path = tuple(part for part in error["loc"] if part not in _TAGS)
    if error["type"] == "json_schema":
        # Points the file's line number at the offending part of the schema, not just at `json_schema:`.
        path += tuple(error.get("ctx", {}).get("schema_path", ()))
    step: str | None = None
    rest = path
    if len(path) >= 2 and path[0] == "steps" and isinstance(path[1], int):
        step = _step_label(data, path[1])
        rest = path[2:]
    if error["type"] == "json_schema":
        rest = rest[: rest.index("json_schema") + 1]
    field = _dotted(rest)
    kind = error["type"]
    if kind == "missing":
        message = "missing (required)"
    elif kind == "extra_forbidden":
        allowed = _allowed_fields(path, data)
        return ChainProblem(path, step, field, "unknown field", hint=suggest(str(path[-1]), allowed, "fields"))
    else:
        message = error["msg"][:1].lower() + error["msg"][1:]
        message = message.removeprefix("value error, ")
    return ChainProblem(path, step, field, message)


def _step_label(data: dict[str, Any], index: int) -> str:
    steps = data.get("steps")
    if isinstance(steps, list) and index < len(steps) and isinstance(steps[index], dict):
        step_id = steps[index].get("id")
        if isinstance(step_id, str) and step_id:
            return step_id
    return f"#{index + 1}"


def _allowed_fields(path: tuple[str | int, ...], data: dict[str, Any]) -> list[str]:
    """Which fields the mapping holding an unknown one may have."""
    parent = path[:-1]
    model: type[BaseModel] = Chain
    if parent == ("triggers",):
        model = Triggers
    elif parent == ("deliver",):
        model = Deliver
    elif parent == ("deliver", "email"):
        model = EmailDelivery
    elif parent == ("deliver", "email", "to"):
        model = EmailRecipients
    elif len(parent) >= 2 and parent[0] == "steps" and isinstance(parent[1], int):
        steps = data.get("steps") or []
        raw = steps[parent[1]] if isinstance(steps, list) and parent[1] < len(steps) else {}
        model = AskStep if _step_tag(raw) == "ask-step" else LLMStep
        if parent[2:] == ("output",):
            model = JsonOutput
    return list(model.model_fields)


def _dotted(parts: tuple[str | int, ...]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _json_path(parts: Any) -> str:
    return _dotted(tuple(parts))

"""The Jinja2 side of chains: one sandboxed environment (chains are edited by people, not trusted code), the
filters chain authors get, and reading a template's variables so a chain is checked before it ever runs."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from jinja2 import StrictUndefined, Template, nodes
from jinja2.meta import find_undeclared_variables
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup, escape

# What every template may use. `transcript`, `media` and `thread` also need the chain to declare them (`needs`).
ALWAYS_IN_SCOPE = frozenset({"input", "steps", "now"})
NEEDS_SCOPE = {"transcript": "transcript", "media": "transcript", "thread": "thread"}
SCOPE_NAMES = ALWAYS_IN_SCOPE | NEEDS_SCOPE.keys()


def timestamp(seconds: Any) -> str:
    """Seconds from the start of the media as people read them: "4:05", "1:02:09"."""
    total = max(0, int(float(seconds)))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def bullets(items: Any, marker: str = "-") -> str:
    """A Markdown bullet list, one line per item; a JSON step's list of strings reads naturally this way."""
    if items is None:
        return ""
    if isinstance(items, str):
        items = [line for line in items.splitlines() if line.strip()]
    lines = []
    for item in items:
        text = item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)
        lines.append(f"{marker} {' '.join(text.split())}")
    return "\n".join(lines)


def to_json(value: Any, indent: int | None = 2) -> str:
    """JSON as a model should read it. Replaces Jinja's own `tojson`, which escapes quotes and `<` for HTML."""
    return json.dumps(value, ensure_ascii=False, indent=indent)


def subject_of(text: Any) -> str:
    """The subject of a drafted email: its leading "Subject: ..." line, else its first line."""
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    first = lines[0] if lines else ""
    return first.split(":", 1)[1].strip() if first.lower().startswith("subject:") else first


def without_subject(text: Any) -> str:
    """A drafted email's body: the text without its leading "Subject: ..." line."""
    body = str(text).strip()
    if body.lower().startswith("subject:"):
        body = body.split("\n", 1)[1] if "\n" in body else ""
    return body.strip()


def paragraphs(text: Any) -> Markup:
    """Plain text as HTML paragraphs (escaped; single line breaks kept), for email templates."""
    blocks = [block.strip() for block in str(text).strip().split("\n\n") if block.strip()]
    return Markup("\n").join(
        Markup("<p>{}</p>").format(Markup("<br>\n").join(map(escape, b.splitlines()))) for b in blocks
    )


@cache
def environment(*, html: bool = False) -> SandboxedEnvironment:
    # StrictUndefined: a misspelt field fails the step with its name instead of rendering as an empty string.
    # No autoescape: the output is a prompt or Markdown, not HTML. trim/lstrip_blocks: a `{% for %}` on its own
    # line in a YAML block leaves no blank line or indentation behind, so templates can be laid out readably.
    # An email's HTML part (`html=True`) escapes what it inserts: a step's output must not become markup.
    env = SandboxedEnvironment(
        undefined=StrictUndefined, autoescape=html, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False
    )
    env.filters["timestamp"] = timestamp
    env.filters["bullets"] = bullets
    env.filters["tojson"] = to_json
    env.filters["subject_of"] = subject_of
    env.filters["without_subject"] = without_subject
    env.filters["paragraphs"] = paragraphs
    return env


def compile_template(source: str, *, html: bool = False) -> Template:
    """Raises jinja2.TemplateSyntaxError (with `lineno`) for a template that does not parse."""
    return environment(html=html).from_string(source)


@dataclass(frozen=True, slots=True)
class TemplateProblem:
    message: str
    line: int | None
    hint: str = ""


@dataclass(frozen=True, slots=True)
class StepReference:
    step_id: str
    line: int


def check_template(
    source: str, *, needs: Iterable[str], extra: Iterable[str] = ()
) -> tuple[list[TemplateProblem], list[StepReference]]:
    """Problems with a template's syntax or variables, and the `steps.X` it reads (checked by the caller, which
    knows the order of the steps). `extra` names variables this template has besides the usual (`reply`)."""
    env = environment()
    try:
        ast = env.parse(source)
        env.compile(ast)  # unknown filters and tests are only found here
    except Exception as exc:  # noqa: BLE001 (Jinja raises several classes; all mean "does not compile")
        message = _first_line(getattr(exc, "message", None) or str(exc))
        return [TemplateProblem(message, getattr(exc, "lineno", None))], []
    problems: list[TemplateProblem] = []
    declared = set(needs)
    known = SCOPE_NAMES | set(extra)
    for name in sorted(find_undeclared_variables(ast), key=lambda n: _line_of(ast, n)):
        line = _line_of(ast, name)
        if name not in known:
            hint = suggest(name, known, "variables")
            problems.append(TemplateProblem(f"unknown variable {name!r}", line, hint))
        elif name in NEEDS_SCOPE and NEEDS_SCOPE[name] not in declared:
            need = NEEDS_SCOPE[name]
            problems.append(
                TemplateProblem(f"uses {name!r} but the chain does not ask for it: add {need!r} to `needs`", line)
            )
    return problems, list(_step_references(ast))


def _step_references(ast: nodes.Template) -> Iterable[StepReference]:
    """`steps.X` and `steps["X"]`. A computed `steps[name]` cannot be checked here and fails at run time instead."""
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        target = getattr(node, "node", None)
        if not (isinstance(target, nodes.Name) and target.name == "steps"):
            continue
        if isinstance(node, nodes.Getattr):
            yield StepReference(node.attr, node.lineno)
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            yield StepReference(node.arg.value, node.lineno)


def _line_of(ast: nodes.Template, name: str) -> int:
    lines = [node.lineno for node in ast.find_all(nodes.Name) if node.name == name and node.ctx == "load"]
    return min(lines, default=1)


def suggest(wrong: str, known: Iterable[str], what: str) -> str:
    """ "did you mean 'transcript'?" when something close exists, else the list of what does."""
    names = sorted(known)
    close = difflib.get_close_matches(wrong, names, n=1)
    if close:
        return f"did you mean {close[0]!r}?"
    return f"the {what} are: {', '.join(names)}" if names else f"there are no {what}"


def _first_line(text: str) -> str:
    # Jinja's messages read as sentences ("No filter named 'x'."); ours are clauses after "field: ".
    line = text.strip().splitlines()[0].rstrip(".") if text.strip() else "does not compile"
    return line[:1].lower() + line[1:]

"""The chains a worker knows: the shipped ones plus the operator's folder (`CHAINS_DIR`; same name: theirs wins).
Every file is checked and every problem is reported together, each with its file and line, so a broken chain
stops the worker at start-up instead of quietly disappearing."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from bot.chains.spec import Chain, ChainInvalid, ChainProblem, parse_chain
from bot.config import Settings
from bot.errors import ConfigurationError, InvalidInput

SHIPPED_DIR = Path(__file__).parent / "shipped"
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]
SUFFIXES = (".yaml", ".yml")
Origin = Literal["shipped", "yours"]


@dataclass(frozen=True, slots=True)
class LoadedChain:
    chain: Chain
    path: Path
    origin: Origin
    # The shipped file a chain of the same name in CHAINS_DIR replaces.
    replaces: Path | None = None


class ChainLibrary:
    """Chains by name and by alias (`triggers.commands`), and which ones a kind of file starts."""

    def __init__(self, loaded: Iterable[LoadedChain]) -> None:
        self._entries = {entry.chain.name: entry for entry in sorted(loaded, key=lambda e: e.chain.name)}
        self._aliases = {alias: name for name, e in self._entries.items() for alias in e.chain.triggers.commands}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name_or_alias: str) -> Chain | None:
        entry = self.entry(name_or_alias)
        return entry.chain if entry is not None else None

    def entry(self, name_or_alias: str) -> LoadedChain | None:
        key = name_or_alias.strip().lower()
        return self._entries.get(key) or self._entries.get(self._aliases.get(key, ""))

    def require(self, name_or_alias: str) -> Chain:
        """The chain, or `InvalidInput` telling the user which chains there are."""
        chain = self.get(name_or_alias)
        if chain is None:
            names = ", ".join(self._entries) or "none"
            raise InvalidInput(f'There is no chain called "{name_or_alias.strip()}". The chains are: {names}.')
        return chain

    def for_file(self, kind: str, extension: str = "") -> list[Chain]:
        """Chains triggered by a file of this kind ("audio", "video", "text") or extension (".vtt" or "vtt"), the
        operator's own (CHAINS_DIR) before the shipped ones, so adding a chain file is enough to take over a type."""
        wanted = {kind.lower()}
        if extension:
            wanted.add("." + extension.lower().lstrip("."))
        matching = [e for e in self._entries.values() if wanted & set(e.chain.triggers.file_types)]
        return [e.chain for e in sorted(matching, key=lambda e: e.origin == "shipped")]

    def all(self) -> list[Chain]:
        return [entry.chain for entry in self._entries.values()]

    def entries(self) -> list[LoadedChain]:
        return list(self._entries.values())


def load_library(settings: Settings) -> ChainLibrary:
    """The shipped chains and CHAINS_DIR's. Raises `ConfigurationError` listing every problem in every file."""
    yours: list[Path] = []
    if settings.chains_dir is not None:
        if not settings.chains_dir.is_dir():
            raise ConfigurationError(f"CHAINS_DIR={settings.chains_dir}: no such folder")
        yours.append(settings.chains_dir)
    library, problems = load_sources(yours)
    if problems:
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        raise ConfigurationError(f"{count} in chain files:\n" + "\n".join(f"  {problem}" for problem in problems))
    return library


def load_sources(yours: Sequence[Path], *, shipped: bool = True) -> tuple[ChainLibrary, list[str]]:
    """The shipped chains, then the chain files in `yours` (files or folders), which replace shipped chains of
    the same name. Returns the library of every chain that loaded and the problems, as text for the operator."""
    problems: list[str] = []
    merged: dict[str, LoadedChain] = {}
    if shipped:
        loaded, problems = load_files(chain_files(SHIPPED_DIR), "shipped")
        merged = {entry.chain.name: entry for entry in loaded}
    files: list[Path] = []
    for path in yours:
        if path.is_dir():
            files += chain_files(path)
        elif path.is_file():
            files.append(path)
        else:
            problems.append(f"{display(path)}: no such file or folder")
    loaded, found = load_files(files, "yours")
    problems += found
    for entry in loaded:
        earlier = merged.get(entry.chain.name)
        replaces = earlier.path if earlier is not None and earlier.origin == "shipped" else None
        merged[entry.chain.name] = LoadedChain(entry.chain, entry.path, entry.origin, replaces)
    problems += alias_problems(merged.values())
    return ChainLibrary(merged.values()), problems


def chain_files(folder: Path) -> list[Path]:
    """The folder's chain files (*.yaml, *.yml), not its subfolders'."""
    return sorted(path for path in folder.iterdir() if path.suffix in SUFFIXES and path.is_file())


def load_files(paths: Iterable[Path], origin: Origin) -> tuple[list[LoadedChain], list[str]]:
    """Chains from these files; two files naming the same chain is a problem (within one folder or call)."""
    loaded: dict[str, LoadedChain] = {}
    problems: list[str] = []
    for path in paths:
        chain, found = read_chain_file(path)
        problems += found
        if chain is None:
            continue
        other = loaded.get(chain.name)
        if other is not None:
            where = display(other.path)
            problems.append(f'{display(path)}: name: "{chain.name}" is also the name of the chain in {where}')
            continue
        loaded[chain.name] = LoadedChain(chain, path, origin)
    return list(loaded.values()), problems


def read_chain_file(path: Path) -> tuple[Chain | None, list[str]]:
    """One file: its chain, or None and every problem, each as "FILE: step "ID": FIELD: what (line N)"."""
    where = display(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [f"{where}: cannot be read: {exc}"]
    try:
        data, root = _compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        return None, [f"{where}: YAML syntax error{at}: {exc.problem or exc.context}"]
    except yaml.YAMLError as exc:
        return None, [f"{where}: YAML error: {exc}"]
    problems = [f"{where}: {problem}" for problem in _duplicate_keys(root)]
    try:
        chain = parse_chain(data)
    except ChainInvalid as invalid:
        located = sorted((_line(root, problem), index, problem) for index, problem in enumerate(invalid.problems))
        return None, problems + [f"{where}: {problem.describe(line)}" for (_, line), _, problem in located]
    return (None if problems else chain), problems


def alias_problems(entries: Iterable[LoadedChain]) -> list[str]:
    """An alias may name one chain only, and not another chain's name."""
    problems: list[str] = []
    # Shipped chains claim first, so a clash is reported against the operator's file, which they can change.
    ordered = sorted(entries, key=lambda e: (e.origin != "shipped", e.chain.name))
    claimed: dict[str, LoadedChain] = {e.chain.name: e for e in ordered}
    for entry in ordered:
        for alias in entry.chain.triggers.commands:
            other = claimed.get(alias)
            if other is not None and other.chain.name != entry.chain.name:
                what = "the name" if other.chain.name == alias else "an alias"
                problems.append(
                    f"{display(entry.path)}: triggers.commands: '{alias}' is already {what} of the chain "
                    f'"{other.chain.name}" ({display(other.path)})'
                )
            else:
                claimed[alias] = entry
    return problems


def display(path: Path) -> str:
    """A path as the operator would type it: relative to where they are, or to the project for shipped files."""
    resolved = path.resolve()
    for base in (Path.cwd(), _PACKAGE_ROOT):
        if resolved.is_relative_to(base):
            return str(resolved.relative_to(base))
    return str(path)


def _compose(text: str) -> tuple[Any, yaml.Node | None]:
    """The document's data and its node tree (which knows each value's line)."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    finally:
        loader.dispose()
    return data, root


def _duplicate_keys(node: yaml.Node | None) -> Iterable[str]:
    # PyYAML keeps the last of two equal keys without a word; a second `prompt:` is almost always a mistake.
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    yield f"duplicate key '{key.value}' (line {key.start_mark.line + 1}); only one of them would count"
                seen.add(key.value)
            yield from _duplicate_keys(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _duplicate_keys(item)


def _line(root: yaml.Node | None, problem: ChainProblem) -> tuple[int, str]:
    """Where in the file the problem is (a number to sort by, and words): the line of the value, or of the
    nearest enclosing one when the value is missing, and for a template the line inside it."""
    node, exact = _node_at(root, problem.path)
    if node is None or not problem.path:
        return 0, ""
    start = node.start_mark.line + 1
    if not exact or problem.template_line is None or not isinstance(node, yaml.ScalarNode):
        return start, f"line {start}"
    if node.style == "|":
        line = start + problem.template_line  # a literal block's text begins on the line after the `|`
        return line, f"line {line}"
    if node.start_mark.line == node.end_mark.line:
        return start, f"line {start}"
    # Folded and multi-line plain scalars join lines, so only the template's own line number is known.
    return start, f"line {problem.template_line} of the template starting at line {start}"


def _node_at(root: yaml.Node | None, path: tuple[str | int, ...]) -> tuple[yaml.Node | None, bool]:
    node = root
    for part in path:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            child = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
        if child is None:
            return node, False
        node = child
    return node, True


def format_chain_list(library: ChainLibrary) -> str:
    """`/chain list` in a thread: each chain, how to run it, what starts it and whose it is (Markdown)."""
    if not len(library):
        return "There are no chains yet. An operator can add chain files to CHAINS_DIR."
    lines = ["**Chains** (run one with `/chain run NAME [text]`):"]
    for entry in library.entries():
        chain = entry.chain
        notes = []
        if chain.triggers.commands:
            notes.append("also " + ", ".join(f"`{alias}`" for alias in chain.triggers.commands))
        if chain.triggers.file_types:
            notes.append("runs on " + ", ".join(chain.triggers.file_types) + " files")
        if entry.replaces is not None:
            notes.append("customised here: replaces the shipped one")
        elif entry.origin == "yours":
            notes.append("added here")
        suffix = f" ({'; '.join(notes)})" if notes else ""
        lines.append(f"- **{chain.name}**: {chain.description}{suffix}")
    return "\n".join(lines)

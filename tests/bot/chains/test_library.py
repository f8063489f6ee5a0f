"""Loading chain files: the shipped ones load, and each kind of mistake in a file is reported with its file,
step, field and line, all files' problems together."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bot.chains.library import SHIPPED_DIR, format_chain_list, load_library, load_sources, read_chain_file
from bot.config import Settings
from bot.errors import ConfigurationError, InvalidInput

GOOD = """\
name: standup-notes
description: Notes from a standup recording.
version: 3
triggers:
  commands: [standup]
  file_types: [audio, .vtt]
needs: [transcript]
steps:
  - id: notes
    prompt: |
      Write notes for {{ media.name }}:
      {{ transcript.timestamped }}
  - id: tags
    prompt: "Tags for: {{ steps.notes }}"
    output:
      json_schema: {type: array, items: {type: string}}
reply: "{{ steps.notes }} {{ steps.tags | join(', ') }}"
"""


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems_of(path: Path) -> list[str]:
    chain, problems = read_chain_file(path)
    assert chain is None, "a file with problems gives no chain"
    return problems


def test_the_shipped_chains_load_without_problems() -> None:
    library, problems = load_sources([])
    assert problems == []
    names = {chain.name for chain in library.all()}
    assert names == {"thread-summary", "media-digest", "followup-email", "clarify-then-answer"}
    assert {path.stem for path in SHIPPED_DIR.glob("*.yaml")} == names, "each shipped file is named for its chain"
    digest = library.get("digest")
    assert digest is not None
    assert digest.name == "media-digest"
    assert [c.name for c in library.for_file("video", ".mp4")] == ["media-digest"]
    assert [c.name for c in library.for_file("text")] == ["media-digest"]
    email = library.get("email")
    assert email is not None
    assert [step.id for step in email.steps] == ["key_points", "draft", "critique", "final"]
    assert email.step("key_points").json_schema is not None  # type: ignore[union-attr]


def test_a_good_user_chain_loads_with_its_triggers(tmp_path: Path) -> None:
    write(tmp_path / "chains", "standup.yaml", GOOD)
    library = load_library(Settings(_env_file=None, chains_dir=tmp_path / "chains"))
    chain = library.require("STANDUP")
    assert chain.name == "standup-notes"
    assert chain.version == 3
    # The operator's chain comes first: adding a file is enough to take over a type from the shipped one.
    assert [c.name for c in library.for_file("audio", "mp3")] == ["standup-notes", "media-digest"]
    assert [c.name for c in library.for_file("text", ".VTT")] == ["standup-notes", "media-digest"]
    with pytest.raises(InvalidInput, match=r'There is no chain called "nope"\. The chains are: clarify-then-answer'):
        library.require("nope")


def test_a_user_chain_replaces_the_shipped_one_of_the_same_name_and_the_list_says_so(tmp_path: Path) -> None:
    write(
        tmp_path / "chains",
        "mine.yaml",
        """\
        name: thread-summary
        description: Our own summary.
        version: "2024-06-01"
        needs: [thread]
        steps:
          - {id: s, prompt: "Summarize {{ thread | length }} messages"}
        reply: "{{ steps.s }}"
        """,
    )
    library = load_library(Settings(_env_file=None, chains_dir=tmp_path / "chains"))
    entry = library.entry("thread-summary")
    assert entry is not None
    assert entry.origin == "yours"
    assert entry.replaces == SHIPPED_DIR / "thread-summary.yaml"
    assert entry.chain.version == "2024-06-01"
    assert library.get("summary") is None, "the shipped chain's aliases went with it"
    listing = format_chain_list(library)
    assert "- **thread-summary**: Our own summary. (customised here: replaces the shipped one)" in listing
    assert "- **media-digest**: Digest a recording" in listing
    assert "also `digest`; runs on audio, video, text files" in listing


def test_bad_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.yaml", "name: x\ndescription: y\nsteps:\n  - id: a\n    prompt: [unclosed\n")
    assert problems_of(path) == [
        "broken.yaml: YAML syntax error at line 6, column 1: expected ',' or ']', but got '<stream end>'"
    ]


def test_a_missing_field_names_the_step_and_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "missing.yaml",
        """\
        name: missing
        description: d
        version: 1
        steps:
          - id: first
            system: hello
        reply: "x"
        """,
    )
    assert problems_of(path) == ['missing.yaml: step "first": prompt: missing (required) (line 5)']


def test_an_unknown_variable_names_the_step_field_and_line_in_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "typo.yaml",
        """\
        name: typo
        description: d
        version: 1
        needs: [transcript]
        steps:
          - id: summary
            prompt: |
              Summarize this.

              {{ transcrpt.text }}
        reply: "{{ steps.summary }}"
        """,
    )
    assert problems_of(path) == [
        "typo.yaml: step \"summary\": prompt: unknown variable 'transcrpt' (line 10); did you mean 'transcript'?"
    ]


def test_a_reference_to_a_later_step_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "order.yaml",
        """\
        name: order
        description: d
        version: 1
        steps:
          - {id: draft, prompt: "Improve {{ steps.polish }}"}
          - {id: polish, prompt: "Polish {{ steps.draft }} and {{ steps.drfat }}"}
        reply: "{{ steps.polish }}"
        """,
    )
    assert problems_of(path) == [
        "order.yaml: step \"draft\": prompt: 'steps.polish' runs later (step #2) (line 5); "
        "a step can only use the steps before it",
        "order.yaml: step \"polish\": prompt: unknown step 'steps.drfat' (line 6); did you mean 'draft'?",
    ]


def test_an_invalid_json_schema_points_at_the_bad_keyword(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "schema.yaml",
        """\
        name: schema
        description: d
        version: 1
        steps:
          - id: tags
            prompt: tags please
            output:
              json_schema:
                type: object
                properties:
                  tags: {type: arry}
        reply: "{{ steps.tags }}"
        """,
    )
    assert problems_of(path) == [
        "schema.yaml: step \"tags\": output.json_schema: 'arry' is not valid under any of the given schemas "
        "(at properties.tags.type) (line 11)"
    ]


def test_a_duplicate_step_id_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "dupe.yaml",
        """\
        name: dupe
        description: d
        version: 1
        steps:
          - {id: a, prompt: one}
          - {id: a, prompt: two}
        reply: "{{ steps.a }}"
        """,
    )
    assert problems_of(path) == [
        'dupe.yaml: step "a": id: another step (#1) has this id already; step ids must be unique (line 6)'
    ]


def test_every_problem_in_a_file_is_reported_in_file_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "many.yaml",
        """\
        name: Many Things
        description: d
        version: 1.5
        triggers:
          commands: [list]
          file_types: [podcast]
        steps:
          - id: a
            promt: x
          - id: b
            prompt: "{{ input | shout }}"
            output: yaml
          - id: c
            ask: "{{ thread }}"
            timeout: 2 fortnights
        reply: "{{ steps.a }}"
        attach_transcript: true
        """,
    )
    assert problems_of(path) == [
        "many.yaml: name: string should match pattern '^[a-z0-9]+(?:-[a-z0-9]+)*$' (line 1)",
        'many.yaml: version: must be a whole number (3) or a text ("2024-06-01") (line 3)',
        "many.yaml: triggers.commands: 'list' cannot be an alias: /chain uses it itself (line 5)",
        "many.yaml: triggers.file_types: 'podcast' is neither a kind of file (audio, video, text) nor an extension "
        "like '.vtt' (line 6)",
        'many.yaml: step "a": prompt: missing (required) (line 8)',
        "many.yaml: step \"a\": promt: unknown field (line 9); did you mean 'prompt'?",
        "many.yaml: step \"b\": prompt: no filter named 'shout' (line 11)",
        'many.yaml: step "b": output: must be "text" or {json_schema: {...}} (line 12)',
        "many.yaml: step \"c\": ask: uses 'thread' but the chain does not ask for it: add 'thread' to `needs` "
        "(line 14)",
        'many.yaml: step "c": timeout: write a duration like "30 minutes", "2 hours", "1 day", or a number of seconds '
        "(line 15)",
        "many.yaml: attach_transcript: needs a transcript: add 'transcript' to `needs` (line 17)",
    ]


def test_a_template_that_does_not_parse_and_a_duplicate_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "syntax.yaml",
        """\
        name: syntax
        description: d
        version: 1
        steps:
          - id: a
            prompt: |
              fine
              {% if input %}no end
        reply: "{{ steps.a }}"
        reply: again
        """,
    )
    assert problems_of(path) == [
        "syntax.yaml: duplicate key 'reply' (line 10); only one of them would count",
        'syntax.yaml: step "a": prompt: unexpected end of template. Jinja was looking for the following tags: '
        "'elif' or 'else' or 'endif'. The innermost block that needs to be closed is 'if' (line 8)",
    ]


def test_a_file_that_is_not_a_mapping(tmp_path: Path) -> None:
    assert problems_of(write(tmp_path, "list.yaml", "- a\n- b\n")) == [
        "list.yaml: a chain file holds a mapping (name, description, version, steps, reply), not a list"
    ]
    assert problems_of(write(tmp_path, "empty.yaml", "")) == [
        "empty.yaml: a chain file holds a mapping (name, description, version, steps, reply), not empty"
    ]


def test_load_library_lists_the_problems_of_every_file_and_clashing_aliases(tmp_path: Path) -> None:
    folder = tmp_path / "chains"
    write(folder, "a.yaml", GOOD)
    write(folder, "b.yaml", GOOD.replace("standup-notes", "other").replace("[standup]", "[digest]"))
    write(folder, "c.yaml", GOOD.replace("standup-notes", "third").replace("{{ steps.notes }}", "{{ steps.nope }}"))
    write(folder, "d.yaml", GOOD)  # the same name as a.yaml
    (folder / "notes.txt").write_text("not a chain")
    with pytest.raises(ConfigurationError) as raised:
        load_library(Settings(_env_file=None, chains_dir=folder))
    assert str(raised.value).splitlines() == [
        "4 problems in chain files:",
        "  chains/c.yaml: step \"tags\": prompt: unknown step 'steps.nope' (line 14); did you mean 'notes'?",
        "  chains/c.yaml: reply: unknown step 'steps.nope' (line 17); did you mean 'notes'?",
        '  chains/d.yaml: name: "standup-notes" is also the name of the chain in chains/a.yaml',
        "  chains/b.yaml: triggers.commands: 'digest' is already an alias of the chain \"media-digest\" "
        "(bot/chains/shipped/media-digest.yaml)",
    ]


def test_a_missing_chains_dir_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"CHAINS_DIR=.*nowhere: no such folder"):
        load_library(Settings(_env_file=None, chains_dir=tmp_path / "nowhere"))

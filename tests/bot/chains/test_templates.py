"""Rendering: the filters chain authors get, the sandbox, the scope built from a transcript and a thread (cut to
the budget with a note), and the shipped media digest's reply as a user would see it."""

from __future__ import annotations

import pytest
from jinja2 import TemplateError, UndefinedError
from jinja2.exceptions import SecurityError

from bot.chains.library import load_sources
from bot.chains.runner import render_reply
from bot.chains.scope import fit_scope, media_scope, transcript_scope
from bot.chains.templates import bullets, compile_template, timestamp
from bot.ports import Transcript, Utterance

STANDUP = Transcript(
    text="Morning. We ship on Friday. Dana owns the release notes.",
    duration_s=754.0,
    utterances=(
        Utterance(0, 0.0, 3.2, "Morning."),
        Utterance(1, 65.5, 69.0, "We ship on Friday."),
        Utterance(0, 600.0, 604.0, "Dana owns the release notes."),
    ),
)


def render(source: str, **scope: object) -> str:
    return compile_template(source).render(**scope)


@pytest.mark.parametrize(
    ("seconds", "shown"), [(0, "00:00"), (65.5, "01:05"), (3599, "59:59"), (3600, "1:00:00"), (7329, "2:02:09")]
)
def test_timestamp_filter(seconds: float, shown: str) -> None:
    assert timestamp(seconds) == shown
    assert render("{{ t | timestamp }}", t=seconds) == shown


def test_bullets_filter_lists_strings_and_json_items() -> None:
    assert bullets(["one", "two\n  lines"]) == "- one\n- two lines"
    assert bullets([{"a": 1}]) == '- {"a": 1}'
    assert render("{{ items | bullets('*') }}", items=["x", "y"]) == "* x\n* y"
    assert render("{{ text | bullets }}", text="a\n\nb") == "- a\n- b"


def test_tojson_is_plain_json_for_a_model_to_read() -> None:
    # Jinja's own tojson escapes ' and < for HTML, which would put \u0027 into prompts.
    assert render("{{ v | tojson }}", v={"who": "Dana's team <ops>"}) == '{\n  "who": "Dana\'s team <ops>"\n}'


def test_undefined_fields_fail_loudly_and_the_sandbox_holds() -> None:
    with pytest.raises(UndefinedError, match="has no attribute 'titel'"):
        render("{{ steps.summary.titel }}", steps={"summary": {"title": "x"}})
    with pytest.raises(SecurityError):
        render("{{ input.__class__.__mro__ }}", input="x")
    with pytest.raises(TemplateError):
        render("{{ ''.format_map.__globals__ }}")


def test_transcript_scope_has_timestamped_lines_and_speakers_from_one() -> None:
    scope = transcript_scope(STANDUP)
    assert scope["timestamped"] == (
        "[00:00] Speaker 1: Morning.\n"
        "[01:05] Speaker 2: We ship on Friday.\n"
        "[10:00] Speaker 1: Dana owns the release notes."
    )
    assert scope["utterances"][1] == {"speaker": "Speaker 2", "start": 65.5, "end": 69.0, "text": "We ship on Friday."}
    assert scope["duration"] == 754.0
    long = Transcript("x", 4000.0, (Utterance(0, 5.0, 6.0, "hi"), Utterance(0, 3700.0, 3701.0, "bye")))
    assert transcript_scope(long)["timestamped"] == "[0:00:05] Speaker 1: hi\n[1:01:40] Speaker 1: bye"


def test_long_transcripts_and_threads_are_cut_with_a_note() -> None:
    lines = tuple(Utterance(0, float(i * 10), float(i * 10 + 5), f"sentence number {i} " * 5) for i in range(200))
    transcript = Transcript(" ".join(u.text for u in lines), 2000.0, lines)
    fitted = fit_scope({"transcript": transcript, "input": "hi"}, 1000)
    text, stamped = fitted["transcript"]["text"], fitted["transcript"]["timestamped"]
    assert text.endswith(f"\n[transcript cut at {len(text.splitlines()[0])} characters]")
    assert len(text.splitlines()[0]) <= 1000
    assert stamped.endswith("characters]")
    assert stamped.splitlines()[-2].startswith("["), "cut at a line's end, not mid-line"
    assert sum(len(u["text"]) for u in fitted["transcript"]["utterances"]) <= 1000
    assert fitted["input"] == "hi"

    thread = [{"role": "user", "user": "ada", "text": f"message {i} " + "x" * 90} for i in range(50)]
    cut = fit_scope({"thread": thread}, 1000)["thread"]
    assert cut[0] == {"role": "system", "user": "threadbot", "text": "[41 earlier messages left out to fit]"}
    assert cut[-1]["text"].startswith("message 49 ")
    assert fit_scope({"thread": thread[:3]}, 1000)["thread"] == thread[:3]


def test_the_media_digest_reply_reads_well() -> None:
    library, _ = load_sources([])
    chain = library.require("media-digest")
    scope = {
        "input": "",
        "transcript": transcript_scope(STANDUP),
        "media": media_scope("standup.mp3", "audio", 754.0),
        "steps": {
            "summary": "A short standup.\n\n**Key points**\n- Ship on Friday",
            "titles": ["Shipping Friday", "Who owns the notes", "Standup, 3 March"],
            "tags": ["release", "standup"],
            "chapters": [{"start": 0, "title": "Hello"}, {"start": 65.5, "title": "The release"}],
            "actions": [
                {"task": "Write the release notes", "owner": "Dana", "due": "Friday"},
                {"task": "Book the demo room", "owner": "", "due": ""},
            ],
        },
    }
    assert render_reply(chain, scope) == (
        "🎬 **standup.mp3** · 12:34\n\n"
        "**Title ideas**\n- Shipping Friday\n- Who owns the notes\n- Standup, 3 March\n\n"
        "**Summary**\nA short standup.\n\n**Key points**\n- Ship on Friday\n\n"
        "**Chapters**\n`00:00` Hello\n`01:05` The release\n\n"
        "**Action items**\n- Write the release notes — Dana (by Friday)\n- Book the demo room\n\n"
        "**Tags:** release, standup"
    )
    scope["steps"] = {**scope["steps"], "chapters": [], "actions": []}  # type: ignore[dict-item]
    quiet = render_reply(chain, scope)
    assert "**Chapters**" not in quiet
    assert "**Action items**\n_None mentioned._\n\n**Tags:**" in quiet

"""Text files become transcripts without transcription: plain text as one utterance, captions as timed ones."""

from __future__ import annotations

import pytest

from bot.errors import InvalidInput
from bot.media.captions import caption_format, transcript_from_text
from bot.ports import Utterance

VTT = """WEBVTT - a talk
Kind: captions

NOTE
This note spans
two lines and is not a cue.

STYLE
::cue { color: yellow }

intro
00:00.500 --> 00:04.000 align:start position:10%
<v.loud Ada Lovelace>Welcome to the <b>engine</b>
room &amp; its <i>cards</i>.</v>

00:00:04.500 --> 00:00:07.250
<v Charles>Thank you, Ada.

00:07.250 --> 00:09.000
It is <00:00:08.000>good to be here.

01:00:09.000 --> 01:00:10.000
<v Ada Lovelace>Let us begin.
"""

SRT = """1
00:00:01,000 --> 00:00:04,000
<i>Hello</i> there,
{\\an8}general.

2
00:00:04,500 --> 00:00:06,000 X1:40 X2:600 Y1:20 Y2:50
You are a bold one.

3
00:01:02,250 --> 00:01:03,000
Back away.

and keep going.
"""


def test_plain_text_and_markdown_are_one_utterance() -> None:
    transcript = transcript_from_text(b"\xef\xbb\xbf  # Notes\n\nShip it on Friday.\n", "notes.md", "text/markdown")
    assert transcript.text == "# Notes\n\nShip it on Friday."
    assert transcript.duration_s == 0.0
    assert transcript.utterances == (Utterance(speaker=0, start_s=0.0, end_s=0.0, text=transcript.text),)
    assert transcript_from_text(b"hello", "a.txt", "text/plain").text == "hello"


def test_webvtt_cues_voices_and_duration() -> None:
    transcript = transcript_from_text(VTT.encode(), "talk.vtt", "text/vtt")
    assert [(u.speaker, u.start_s, u.end_s, u.text) for u in transcript.utterances] == [
        (0, 0.5, 4.0, "Welcome to the engine room & its cards."),
        (1, 4.5, 7.25, "Thank you, Ada."),
        # No voice tag: the speaker of the cue before goes on.
        (1, 7.25, 9.0, "It is good to be here."),
        (0, 3609.0, 3610.0, "Let us begin."),
    ]
    assert transcript.duration_s == 3610.0
    assert transcript.text == (
        "Ada Lovelace: Welcome to the engine room & its cards.\n"
        "Charles: Thank you, Ada.\n"
        "Charles: It is good to be here.\n"
        "Ada Lovelace: Let us begin."
    )
    assert transcript.language == ""


def test_webvtt_with_crlf_line_ends_and_no_voices() -> None:
    data = b"WEBVTT\r\n\r\n00:01.000 --> 00:02.000\r\nOne.\r\n\r\n00:02.000 --> 00:03.500\r\nTwo.\r\n"
    transcript = transcript_from_text(data, "clip.vtt", "")
    assert [(u.speaker, u.text) for u in transcript.utterances] == [(0, "One."), (0, "Two.")]
    assert transcript.text == "One.\nTwo."
    assert transcript.duration_s == 3.5


def test_subrip_cues() -> None:
    transcript = transcript_from_text(SRT.encode(), "movie.srt", "application/x-subrip")
    assert [(u.start_s, u.end_s, u.text) for u in transcript.utterances] == [
        (1.0, 4.0, "Hello there, general."),
        (4.5, 6.0, "You are a bold one."),
        # A blank line inside the last cue's text does not end it.
        (62.25, 63.0, "Back away. and keep going."),
    ]
    assert {u.speaker for u in transcript.utterances} == {0}
    assert transcript.duration_s == 63.0


@pytest.mark.parametrize(
    ("text", "filename", "content_type", "expected"),
    [
        ("WEBVTT\n\n", "captions.txt", "text/plain", "vtt"),
        ("1\n00:00:01,000 --> 00:00:02,000\nhi\n", "subs.SRT", "", "srt"),
        ("1\n00:00:01,000 --> 00:00:02,000\nhi\n", "upload", "application/x-subrip", "srt"),
        ("plain words", "readme", "text/plain", "text"),
    ],
)
def test_format_from_content_name_or_type(text: str, filename: str, content_type: str, expected: str) -> None:
    assert caption_format(text, filename, content_type) == expected


@pytest.mark.parametrize(
    ("data", "filename", "message"),
    [
        (
            "WEBVTT\n\n00:01.000 --> 00:04.000\nok\n\n00:05.5 --> 00:06.000\nbad\n",
            "talk.vtt",
            'talk.vtt, line 6: "00:05.5" is not a timestamp (expected hh:mm:ss.mmm or mm:ss.mmm).',
        ),
        (
            "WEBVTT\n\nid-1\n00:01.000 --> 00:61.000\nbad seconds\n",
            "talk.vtt",
            'talk.vtt, line 4: "00:61.000" is not a timestamp (expected hh:mm:ss.mmm or mm:ss.mmm).',
        ),
        (
            "WEBVTT\n\n00:04.000 --> 00:01.000\nbackwards\n",
            "talk.vtt",
            "talk.vtt, line 3: the cue ends before it starts.",
        ),
        (
            "WEBVTT\n\njust a paragraph\nwith no timing\n",
            "talk.vtt",
            "talk.vtt, line 4: expected a cue timing like 00:01.000 --> 00:04.000.",
        ),
        ("00:01.000 --> 00:02.000\nno header\n", "talk.vtt", "talk.vtt, line 1: a WebVTT file must start with WEBVTT."),
        (
            "1\n00:00:01.000 --> 00:00:02,000\nok, a dot is accepted\n\n2\n00:00:03 --> 00:00:04,000\nbad\n",
            "movie.srt",
            'movie.srt, line 6: "00:00:03" is not a timestamp (expected hh:mm:ss,mmm).',
        ),
        (
            "1\n00:00:01,000 -> 00:00:02,000\nwrong arrow\n",
            "movie.srt",
            "movie.srt, line 2: expected a cue timing like 00:00:01,000 --> 00:00:04,000.",
        ),
        ("WEBVTT\n\nNOTE only a note\n", "empty.vtt", "empty.vtt has no captions in it."),
        ("  \n\n", "blank.txt", "blank.txt is empty."),
    ],
)
def test_malformed_files_say_where(data: str, filename: str, message: str) -> None:
    with pytest.raises(InvalidInput) as invalid:
        transcript_from_text(data.encode(), filename, "")
    assert invalid.value.user_message == message


def test_other_encodings_are_refused_clearly() -> None:
    with pytest.raises(
        InvalidInput, match=r"^notes\.txt is not UTF-8 text \(byte 4 cannot be read\); save it as UTF-8"
    ):
        transcript_from_text("café".encode("latin-1"), "notes.txt", "text/plain")
    with pytest.raises(InvalidInput, match=r"\(byte 6 cannot be read\)"):
        transcript_from_text(b"\xef\xbb\xbfab\xff", "bom.txt", "text/plain")
    with pytest.raises(InvalidInput, match="UTF-16"):
        transcript_from_text("WEBVTT\n".encode("utf-16"), "talk.vtt", "text/vtt")

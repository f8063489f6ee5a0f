"""A file shared in a thread, end to end: console intake -> the production worker -> moto's S3 over HTTP -> the
Deepgram stand-in over HTTP (fetching the presigned URL itself) -> the media-digest chain on the stand-in LLM ->
the digest and the attached transcript in the thread; then questions in that thread see the transcript."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from adapters.console.app import ConsoleSession
from adapters.console.files import file_ref
from adapters.console.inbound import console_thread, to_event
from adapters.console.outbound import file_key
from bot.catalog import COMMANDS
from bot.config import Settings
from bot.events import SlashCommand
from bot.intake import accept
from bot.media.models import MEDIA, MEDIA_CHUNKS, MEDIA_TAGS
from bot.media.search import search_media
from bot.runtime import Runtime
from jobs.queue import open_runtime
from jobs.worker import in_process_worker
from sandbox.deepgram_server import Said, StandInDeepgram
from sandbox.openai_server import StandInLLM
from tests.conftest import make_settings, reset_state, run_status_is, stream_entries, thread_view, wait_for
from tests.s3_fixtures import S3Server

DG_KEY = "dg-test-key"
SAID = [
    Said(0, "Thanks for joining the planning call. We agreed to ship the beta on Friday."),
    Said(1, "I will write the release notes and send them to the design team by Thursday."),
    Said(0, "Great. Budget review moves to next week; Lin owns the spreadsheet."),
]
TRANSCRIPT_WORDS = "ship the beta on Friday"


@pytest.fixture
async def deepgram() -> AsyncIterator[StandInDeepgram]:
    async with StandInDeepgram(api_key=DG_KEY) as server:
        yield server


def media_settings(
    database_url: str, redis_url: str, llm: StandInLLM, deepgram: StandInDeepgram, data_dir: Path, **extra: Any
) -> Settings:
    return make_settings(
        database_url,
        redis_url,
        llm.base_url,
        data_dir,
        deepgram_api_key=DG_KEY,
        deepgram_base_url=deepgram.base_url,
        media_progress_interval_s=0.2,
        **extra,
    )


@pytest.fixture
async def s3_runtime(
    database_url: str,
    redis_url: str,
    stand_in: StandInLLM,
    deepgram: StandInDeepgram,
    s3_server: S3Server,
    s3_bucket: str,
    tmp_path: Path,
) -> AsyncIterator[Runtime]:
    settings = media_settings(
        database_url,
        redis_url,
        stand_in,
        deepgram,
        tmp_path,
        s3_bucket=s3_bucket,
        s3_endpoint_url=s3_server.endpoint_url,
        s3_access_key_id="testing",
        s3_secret_access_key="testing",
        transcribe_via_url=True,
    )
    async with open_runtime(settings) as rt:
        await reset_state(rt)
        yield rt


async def media_rows(rt: Runtime) -> list[dict[str, Any]]:
    async with rt.autocommit.connect() as conn:
        return [dict(row) for row in (await conn.execute(select(MEDIA).order_by(MEDIA.c.id))).mappings()]


def copy_as(source: Path, target: Path) -> Path:
    target.write_bytes(source.read_bytes())
    return target


async def test_speech_shared_from_the_console_is_stored_transcribed_digested_and_answered(
    s3_runtime: Runtime,
    stand_in: StandInLLM,
    deepgram: StandInDeepgram,
    s3_server: S3Server,
    s3_client: Any,
    s3_bucket: str,
    speech_wav: Path,
) -> None:
    rt = s3_runtime
    deepgram.script(SAID)
    session = ConsoleSession(rt, user="ada")
    async with in_process_worker(rt.settings) as worker:
        result = await session.send("", "standup", files=(file_ref(speech_wav),), worker=worker, timeout_s=60)
        assert result.status == "completed"

        # The file went to S3 whole, and Deepgram fetched exactly those bytes from the presigned URL.
        [media] = await media_rows(rt)
        assert media["status"] == "done", media["error"]
        assert media["kind"] == "audio"
        assert media["content_type"] == "audio/wav"
        stored = await asyncio.to_thread(s3_client.head_object, Bucket=s3_bucket, Key=media["blob_key"])
        assert stored["ContentLength"] == speech_wav.stat().st_size == media["size"]
        [request] = deepgram.requests
        assert request.url is not None
        assert request.url.startswith(f"{s3_server.endpoint_url}/{s3_bucket}/")
        assert request.sha256 == media["sha256"]
        assert media["duration_s"] == pytest.approx(request.duration_s, abs=0.01)

        # The chain saw the transcript, and its digest is in the thread with the transcript attached.
        prompts = [json.dumps(r["messages"]) for r in stand_in.chat_requests()]
        assert any(TRANSCRIPT_WORDS in p for p in prompts), "the model never saw the transcript"
        assert media["chain"] == "media-digest"
        assert media["chain_version"]
        view = await thread_view(rt, console_thread("standup"))
        assert view[0].startswith("✅ speech.wav: digest below")
        digest = "\n".join(view[1:])
        assert "Summary" in digest or "summary" in digest
        assert result.reply
        assert result.reply in digest
        [upload] = [e for e in await stream_entries(rt, console_thread("standup")) if e.get("file")]
        assert upload["file"] == "speech-transcript.txt"
        attached = (await rt.redis.get(file_key(upload["id"]))).decode()
        assert attached.startswith("[00:00] Speaker 1: Thanks for joining the planning call.")
        assert attached.splitlines()[1].startswith("[00:0")
        assert "Speaker 2: I will write the release notes" in attached

        # Tags are stored and searchable; the transcript is embedded for retrieval.
        async with rt.autocommit.connect() as conn:
            tags = list((await conn.execute(select(MEDIA_TAGS.c.tag))).scalars())
            chunks = (await conn.execute(select(MEDIA_CHUNKS.c.text))).scalars().all()
            assert tags
            found = await search_media(conn, tags=[tags[0]])
            assert [f.id for f in found] == [media["id"]]
            assert [f.id for f in await search_media(conn, "release notes")] == [media["id"]]
        assert chunks
        assert TRANSCRIPT_WORDS in "\n".join(chunks)

        # A question in the thread is answered with the transcript in context.
        before = len(stand_in.chat_requests())
        answer = await session.send("When does the beta ship?", "standup", worker=worker, timeout_s=30)
        assert answer.status == "completed"
        question_prompt = json.dumps(stand_in.chat_requests()[before:][-1]["messages"])
        assert TRANSCRIPT_WORDS in question_prompt


async def test_a_text_transcript_skips_transcription(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM, tmp_path: Path
) -> None:
    vtt = tmp_path / "call.vtt"
    vtt.write_text(
        "WEBVTT\n\n00:00:01.000 --> 00:00:04.000\n<v Ada>We ship the beta on Friday.\n\n"
        "00:01:05.000 --> 00:01:09.500\n<v Lin>Budget review moves to next week.\n"
    )
    result = await ConsoleSession(runtime, user="ada").send("", "vtt", files=(file_ref(vtt),), worker=worker)
    assert result.status == "completed"
    [media] = await media_rows(runtime)
    assert media["status"] == "done"
    assert media["kind"] == "text"
    assert media["duration_s"] == pytest.approx(69.5)
    assert any("We ship the beta on Friday" in json.dumps(r["messages"]) for r in stand_in.chat_requests())


async def test_a_question_elsewhere_in_the_channel_sees_the_transcript_and_another_channel_does_not(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM, tmp_path: Path
) -> None:
    vtt = tmp_path / "call.vtt"
    vtt.write_text("WEBVTT\n\n00:00:01.000 --> 00:00:04.000\n<v Ada>We ship the beta on Friday.\n")
    session = ConsoleSession(runtime, user="ada")
    assert (await session.send("", "shared-here", files=(file_ref(vtt),), worker=worker)).status == "completed"

    # Another thread of the same channel: the turn finds the channel's chunks and adds the excerpt.
    before = len(stand_in.chat_requests())
    assert (await session.send("When is the beta?", "next-door", worker=worker)).status == "completed"
    [asked] = stand_in.chat_requests()[before:]
    assert "We ship the beta on Friday" in json.dumps(asked["messages"])

    # A thread in another channel: nothing shared there, so no excerpt (and no embedding call).
    elsewhere = replace(console_thread("far-away"), channel_id="another-channel")
    embeddings_before = len([r for r in stand_in.requests if r.path.endswith("/embeddings")])
    accepted = await accept(runtime, replace(to_event("When is the beta?", "far-away"), thread=elsewhere))
    await wait_for(lambda: run_status_is(runtime, accepted.run_id, "completed"), timeout_s=30)
    asked_elsewhere = stand_in.chat_requests()[-1]
    assert "When is the beta?" in json.dumps(asked_elsewhere["messages"])
    assert "We ship the beta on Friday" not in json.dumps(asked_elsewhere["messages"])
    assert len([r for r in stand_in.requests if r.path.endswith("/embeddings")]) == embeddings_before


async def test_a_transient_deepgram_failure_is_retried(
    database_url: str, redis_url: str, stand_in: StandInLLM, deepgram: StandInDeepgram, speech_wav: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    settings = media_settings(database_url, redis_url, stand_in, deepgram, tmp_path)
    deepgram.fail_next(2, status=503)
    deepgram.script(SAID)
    async with open_runtime(settings) as rt:
        await reset_state(rt)
        async with in_process_worker(settings) as worker:
            result = await ConsoleSession(rt, user="ada").send("", "t", files=(file_ref(speech_wav),), worker=worker)
        assert result.status == "completed"
        [media] = await media_rows(rt)
        assert media["status"] == "done"
        assert [r.status for r in deepgram.requests] == [503, 503, 200]
        # Streamed (no S3 here): the attempt that succeeded sent the whole file again, from the local store.
        assert deepgram.requests[-1].media_bytes == speech_wav.stat().st_size


async def test_deepgram_refusing_the_file_gives_a_clear_reply_and_a_failed_media_row(
    database_url: str, redis_url: str, stand_in: StandInLLM, deepgram: StandInDeepgram, speech_wav: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    settings = media_settings(database_url, redis_url, stand_in, deepgram, tmp_path)
    deepgram.fail_next(1, status=400, err_msg="Bad Request: failed to process audio: corrupt or unsupported data")
    async with open_runtime(settings) as rt:
        await reset_state(rt)
        async with in_process_worker(settings) as worker:
            result = await ConsoleSession(rt, user="ada").send("", "t", files=(file_ref(speech_wav),), worker=worker)
        assert result.status == "failed"
        [media] = await media_rows(rt)
        assert media["status"] == "failed"
        view = await thread_view(rt, console_thread("t"))
        assert view == [
            "❌ speech.wav: Deepgram could not read this file: "
            "Bad Request: failed to process audio: corrupt or unsupported data"
        ]
        assert len(deepgram.requests) == 1, "a refusal is not retried"
        assert stand_in.chat_requests() == [], "no digest is written for a file that was not transcribed"


async def test_a_renamed_image_is_refused_by_its_bytes_and_nothing_is_stored(
    runtime: Runtime, worker: asyncio.Task[None], tmp_path: Path
) -> None:
    fake = tmp_path / "song.mp3"
    fake.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(4096))
    result = await ConsoleSession(runtime, user="ada").send("", "png", files=(file_ref(fake),), worker=worker)
    assert result.status == "failed"
    [media] = await media_rows(runtime)
    assert media["status"] == "failed"
    assert media["blob_key"] == ""
    [notice] = await thread_view(runtime, console_thread("png"))
    assert notice.startswith("❌ song.mp3: ")
    assert "PNG" in notice
    assert "audio" in notice
    stored = [p for p in (runtime.settings.data_dir / "media").rglob("*") if p.is_file()]
    assert stored == []


async def test_an_oversize_file_and_a_wrong_extension_are_refused_at_intake(runtime: Runtime, tmp_path: Path) -> None:
    from bot.errors import InvalidInput

    big = tmp_path / "long.wav"
    with big.open("wb") as f:
        f.truncate(runtime.settings.max_file_bytes + 1)
    with pytest.raises(
        InvalidInput, match=r"“long.wav” is 500,000,001 bytes; the largest file I accept is 500,000,000 bytes"
    ):
        await ConsoleSession(runtime, user="ada").send("", "big", files=(file_ref(big),))
    sheet = tmp_path / "numbers.xlsx"
    sheet.write_bytes(b"PK\x03\x04")
    with pytest.raises(InvalidInput, match=r"I can.t digest “numbers\.xlsx”"):
        await ConsoleSession(runtime, user="ada").send("", "x", files=(file_ref(sheet),))
    assert await media_rows(runtime) == []


async def test_chain_run_media_digest_digests_the_threads_file_again(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("Ada: the beta ships on Friday.\nLin: budget review next week.\n")
    thread = console_thread("again")
    first = await ConsoleSession(runtime, user="ada").send("", "again", files=(file_ref(notes),), worker=worker)
    assert first.status == "completed"
    posts = len(await thread_view(runtime, thread))

    reply = await COMMANDS.handle(
        runtime, SlashCommand(event_id="c1", thread=thread, user_id="ada", command="/chain", text="run media-digest")
    )
    assert reply.accepted, reply.text
    view = await wait_for(lambda: _longer(runtime, thread, posts), timeout_s=20)
    assert "beta ships on Friday" in json.dumps(stand_in.chat_requests()[-1]["messages"])
    assert view[-1]


async def _longer(rt: Runtime, thread: Any, count: int) -> list[str] | None:
    view = await thread_view(rt, thread)
    return view if len(view) > count else None


STANDUP_CHAIN = """
name: standup-notes
description: Who does what, from a standup recording.
version: 7
triggers: {commands: [standup], file_types: [.vtt]}
needs: [transcript]
steps:
  - id: owners
    prompt: "List who owns what in this standup:\\n{{ transcript.timestamped }}"
    output:
      json_schema:
        type: object
        required: [owners, tags]
        properties:
          owners:
            type: array
            items: {type: object, required: [who, what], properties: {who: {type: string}, what: {type: string}}}
          tags: {type: array, items: {type: string}}
reply: |
  Standup owners ({{ media.name }}):
  {% for o in steps.owners.owners %}- {{ o.who }}: {{ o.what }}
  {% endfor %}
"""


async def test_a_chain_added_as_one_yaml_file_takes_over_its_file_type(
    database_url: str, redis_url: str, stand_in: StandInLLM, tmp_path: Path
) -> None:
    from sandbox.openai_server import Step

    chains = tmp_path / "chains"
    chains.mkdir()
    (chains / "standup.yaml").write_text(STANDUP_CHAIN)
    settings = make_settings(database_url, redis_url, stand_in.base_url, tmp_path, chains_dir=chains)
    stand_in.script(Step(reply=json.dumps({"owners": [{"who": "Ada", "what": "release notes"}], "tags": ["standup"]})))
    vtt = tmp_path / "monday.vtt"
    vtt.write_text("WEBVTT\n\n00:00:01.000 --> 00:00:04.000\n<v Ada>I'll write the release notes.\n")
    async with open_runtime(settings) as rt:
        await reset_state(rt)
        async with in_process_worker(settings) as worker:
            result = await ConsoleSession(rt, user="ada").send("", "mon", files=(file_ref(vtt),), worker=worker)
        assert result.status == "completed"
        assert result.reply.strip() == "Standup owners (monday.vtt):\n- Ada: release notes"
        [media] = await media_rows(rt)
        assert (media["chain"], media["chain_version"]) == ("standup-notes", "7")
        assert "I'll write the release notes." in json.dumps(stand_in.chat_requests()[0]["messages"])
        async with rt.autocommit.connect() as conn:
            assert [f.id for f in await search_media(conn, tags=["standup"])] == [media["id"]]


async def test_long_transcription_shows_progress_in_one_edited_message(
    database_url: str, redis_url: str, stand_in: StandInLLM, deepgram: StandInDeepgram, speech_wav: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    settings = media_settings(database_url, redis_url, stand_in, deepgram, tmp_path)
    deepgram.latency_s = 1.5
    async with open_runtime(settings) as rt:
        await reset_state(rt)
        async with in_process_worker(settings) as worker:
            result = await ConsoleSession(rt, user="ada").send("", "p", files=(file_ref(speech_wav),), worker=worker)
        assert result.status == "completed"
        entries = await stream_entries(rt, console_thread("p"))
    progress_id = entries[0]["id"]
    shown = [e["text"] for e in entries if e["id"] == progress_id]
    ticks = [text for text in shown if text.startswith("⏳ speech.wav: transcribing…")]
    assert len(ticks) >= 3, shown
    assert ticks[-1] != ticks[0], "the elapsed time moves on"
    assert shown[-1].startswith("✅ speech.wav: digest below")
    assert sum(1 for e in entries if e["op"] == "post" and e["text"].startswith("⏳")) == 1


async def test_bot_ask_with_a_file_prints_the_digest_on_the_embedded_default(
    settings: Settings, runtime: Runtime, stand_in: StandInLLM, tmp_path: Path
) -> None:
    """The README's demo: no Deepgram key (pocketsphinx transcribes on this machine), media in DATA_DIR, one
    command, and the digest is written from what was said."""
    from tests.bot.media.test_offline import PARAGRAPH, VOICE, speak, word_error_rate, words
    from tests.conftest import run_bot, subprocess_env

    talk = speak(PARAGRAPH, tmp_path / "talk.wav", "-v", VOICE)
    code, out, err = await run_bot("ask", "--file", str(talk), "--thread", "demo", env=subprocess_env(settings))
    assert code == 0, err
    assert "**Summary**" in out
    assert "📎 talk-transcript.txt" in out
    assert "[stand-in transcription]" not in out
    saved = next((settings.data_dir / "uploads").rglob("talk-transcript.txt"))
    transcript = saved.read_text()
    assert transcript.startswith("[00:00] Speaker 1:")
    heard = transcript.split(": ", 1)[1]
    assert word_error_rate(words(PARAGRAPH), words(heard)) < 0.5, heard
    prompts = json.dumps([request["messages"] for request in stand_in.chat_requests()])
    assert "budget review is scheduled for next tuesday" in prompts.lower(), "the digest is written from the words"


async def test_one_bad_file_does_not_stop_the_others_of_its_message(
    runtime: Runtime, worker: asyncio.Task[None], tmp_path: Path
) -> None:
    fake = tmp_path / "cover.mp3"
    fake.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(512))
    notes = tmp_path / "notes.md"
    notes.write_text("# Sync\nAda: the beta ships on Friday.\n")
    result = await ConsoleSession(runtime, user="ada").send(
        "two files", "two", files=(file_ref(fake), file_ref(notes)), worker=worker
    )
    assert result.status == "completed", "one digest was delivered"
    rows = {row["name"]: row for row in await media_rows(runtime)}
    assert rows["cover.mp3"]["status"] == "failed"
    assert "PNG image" in rows["cover.mp3"]["error"]
    assert rows["notes.md"]["status"] == "done"
    view = await thread_view(runtime, console_thread("two"))
    assert view[0].startswith("❌ cover.mp3: “cover.mp3” looks like a PNG image")
    assert view[1].startswith("✅ notes.md: digest below")


async def test_chain_commands_keep_to_the_allowlist(runtime: Runtime) -> None:
    settings = runtime.settings.model_copy(update={"allowed_users": frozenset({"ada"})})
    outsider = SlashCommand(
        event_id="c9", thread=console_thread("x"), user_id="mallory", command="/chain", text="run summary"
    )
    reply = await COMMANDS.handle(replace(runtime, settings=settings), outsider)
    assert not reply.accepted
    assert reply.text.startswith("Sorry, I'm not enabled for you.")


async def test_chain_run_summary_summarizes_the_thread_as_it_stood(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM
) -> None:
    from sandbox.openai_server import Step

    session = ConsoleSession(runtime, user="ada")
    stand_in.script(Step(reply="Noted: Friday."), Step(reply="**In short:** the beta ships on Friday."))
    assert (await session.send("We ship the beta on Friday.", "plan", worker=worker)).status == "completed"
    thread = console_thread("plan")
    reply = await COMMANDS.handle(
        runtime, SlashCommand(event_id="s1", thread=thread, user_id="ada", command="/chain", text="run summary")
    )
    assert reply.text.startswith("Running “thread-summary” (v")
    view = await wait_for(lambda: _longer(runtime, thread, 1), timeout_s=20)
    assert view[-1] == "🧵 **Thread summary**\n\n**In short:** the beta ships on Friday."
    prompt = json.dumps(stand_in.chat_requests()[-1]["messages"])
    assert "ada: We ship the beta on Friday." in prompt
    assert "assistant: Noted: Friday." in prompt

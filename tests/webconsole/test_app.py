"""The console over HTTP against the real server, worker, Postgres and Redis: access rules, the playground's
path through intake to a streamed reply, run pages, retry and cancel, metrics and health."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import select

from bot.followups.models import SCHEDULES
from bot.runtime import Runtime
from bot.workflows.models import RUNS
from sandbox.openai_server import StandInLLM, Step
from tests.conftest import run_status_is, wait_for
from tests.webconsole.conftest import TOKEN, csrf_of, say
from webconsole.app import serving


async def read_events(
    session: aiohttp.ClientSession, url: str, until: Any, timeout_s: float = 15
) -> list[tuple[str, dict[str, Any]]]:
    """Server-sent events from `url` until `until(events)` holds."""
    events: list[tuple[str, dict[str, Any]]] = []
    try:
        return await asyncio.wait_for(_read_events(session, url, until, events), timeout_s)
    except TimeoutError:
        raise AssertionError(f"not seen within {timeout_s} s: {events}") from None


async def _read_events(
    session: aiohttp.ClientSession, url: str, until: Any, events: list[tuple[str, dict[str, Any]]]
) -> list[tuple[str, dict[str, Any]]]:
    async with session.get(url) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        name, data = "", ""
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data += line[6:]
            elif line == "" and name:
                events.append((name, json.loads(data)))
                name, data = "", ""
                if until(events):
                    return events
    raise AssertionError(f"stream ended: {events}")  # pragma: no cover


async def test_nothing_without_login(console: str, anonymous: aiohttp.ClientSession) -> None:
    for path in ("/", "/runs/1", "/live/runs", "/playground?thread=x", "/playground/stream?thread=x", "/schedules"):
        async with anonymous.get(console + path, allow_redirects=False) as response:
            assert response.status == 401, path
    async with anonymous.get(console + "/", headers={"Accept": "text/html"}, allow_redirects=False) as response:
        assert response.status == 303
        assert response.headers["Location"] == "/login"
    async with anonymous.post(console + "/playground/send", data={"thread": "x", "text": "hi"}) as response:
        assert response.status == 401
    async with anonymous.get(f"{console}/login?token=wrong", allow_redirects=False) as response:
        assert response.status == 403
        assert "threadbot_session" not in response.cookies


async def test_login_cookie_is_http_only_and_same_site(console: str, anonymous: aiohttp.ClientSession) -> None:
    async with anonymous.get(f"{console}/login?token={TOKEN}", allow_redirects=False) as response:
        cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Path=/" in cookie
    # The login form works too, with its own CSRF token; without it the POST is refused.
    async with anonymous.post(console + "/login", data={"token": TOKEN}, allow_redirects=False) as response:
        assert response.status == 403
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as fresh:
        async with fresh.get(console + "/login") as response:
            html = await response.text()
        csrf = html.split('name="csrf" value="')[1].split('"')[0]
        data = {"token": TOKEN, "csrf": csrf, "next": "/schedules"}
        async with fresh.post(console + "/login", data=data, allow_redirects=False) as response:
            assert response.status == 303
            assert response.headers["Location"] == "/schedules"
        async with fresh.get(console + "/schedules") as response:
            assert response.status == 200


async def test_post_without_csrf_is_refused(console: str, client: aiohttp.ClientSession, runtime: Runtime) -> None:
    async with client.post(console + "/playground/send", data={"thread": "t1", "text": "hello"}) as response:
        assert response.status == 403
    async with client.post(
        console + "/playground/send", data={"thread": "t1", "text": "hello"}, headers={"X-CSRF-Token": "forged"}
    ) as response:
        assert response.status == 403
    async with client.post(console + "/runs/1/cancel", data={"csrf": "forged"}) as response:
        assert response.status == 403
    async with runtime.autocommit.connect() as conn:
        assert (await conn.execute(RUNS.select())).first() is None  # nothing was accepted


async def test_playground_message_streams_its_reply_and_its_run_has_steps(
    console: str, client: aiohttp.ClientSession, runtime: Runtime, stand_in: StandInLLM
) -> None:
    stand_in.token_delay = 0.02
    sent = await say(client, console, "t-http", "hello web")
    assert sent["accepted"]
    assert sent["run_id"]

    def answered(events: list[tuple[str, dict[str, Any]]]) -> bool:
        edits = [data["text"] for name, data in events if name in ("post", "edit")]
        return bool(edits) and 'You said: "hello web"' in edits[-1] and edits[-1].endswith("not a real model.")

    events = await read_events(client, console + "/playground/stream?thread=t-http", answered)
    assert events[0][0] == "user"
    assert events[0][1]["text"] == "hello web"
    assert any(name == "run" and data["run"] == str(sent["run_id"]) for name, data in events)
    texts = [data["text"] for name, data in events if name in ("post", "edit")]
    assert texts[0] != texts[-1]
    assert texts[-1].startswith(texts[0])

    await wait_for(lambda: run_status_is(runtime, sent["run_id"], "completed"))
    async with client.get(f"{console}/runs/{sent['run_id']}") as response:
        html = await response.text()
    assert "chat_turn" in html
    assert "s-completed" in html
    assert "<code>reply</code>" in html or "reply" in html
    async with client.get(console + "/?platform=web") as response:
        assert f'href="/runs/{sent["run_id"]}"' in await response.text()
    async with client.get(console + "/threads") as response:
        assert "t-http" in await response.text()


async def test_runs_list_updates_live(console: str, client: aiohttp.ClientSession, runtime: Runtime) -> None:
    fragments: list[str] = []

    async def follow() -> None:
        async with client.get(console + "/live/runs", timeout=aiohttp.ClientTimeout(total=20)) as response:
            async for raw in response.content:
                line = raw.decode()
                if line.startswith("data: "):
                    fragments.append(line)
                    if "chat_turn" in line:
                        return

    follower = asyncio.create_task(follow())
    await wait_for(lambda: fragments)
    assert not any("chat_turn" in f for f in fragments)
    await say(client, console, "t-live", "hi")
    await asyncio.wait_for(follower, 15)


async def test_the_events_page_shows_a_new_event_live(console: str, client: aiohttp.ClientSession) -> None:
    async def first_fragment_with(text: str) -> str:
        async with client.get(console + "/live/events", timeout=aiohttp.ClientTimeout(total=20)) as response:
            async for raw in response.content:
                line = raw.decode()
                if line.startswith("data: ") and text in line:
                    return line
        raise AssertionError("the stream ended")

    follower = asyncio.create_task(first_fragment_with("a message for the events page"))
    await asyncio.sleep(0.3)
    await say(client, console, "t-events", "a message for the events page")
    assert "thread.message" in await asyncio.wait_for(follower, 15)


async def test_cancel_a_sleeping_reminder_and_retry_a_failed_run(
    console: str, client: aiohttp.ClientSession, runtime: Runtime, stand_in: StandInLLM
) -> None:
    csrf = await csrf_of(client, console + "/playground?thread=t-ops")
    reply = await say(client, console, "t-ops", "/remind in 2 hours check the deploy")
    assert reply["command"], reply
    assert reply["accepted"], reply

    async def reminder() -> int | None:
        async with runtime.autocommit.connect() as conn:
            row = (await conn.execute(RUNS.select().where(RUNS.c.workflow == "reminder"))).first()
        return int(row.id) if row is not None and row.status == "sleeping" else None

    run_id = await wait_for(reminder)
    async with client.get(console + "/schedules") as response:
        assert f"/runs/{run_id}/cancel" in await response.text()
    async with client.post(f"{console}/runs/{run_id}/cancel", data={"csrf": csrf}, allow_redirects=False) as response:
        assert response.status == 303
    assert await run_status_is(runtime, run_id, "cancelled")

    # A turn whose model call fails for good, then an operator's retry once the model is back.
    stand_in.script(*[Step(status=400)] * 3)
    failed = (await say(client, console, "t-ops", "fail please"))["run_id"]
    await wait_for(lambda: run_status_is(runtime, failed, "failed"))
    async with client.get(f"{console}/runs/{failed}") as response:
        assert f"/runs/{failed}/retry" in await response.text()
    stand_in.reset()
    async with client.post(f"{console}/runs/{failed}/retry", data={"csrf": csrf}, allow_redirects=False) as response:
        assert response.status == 303
    await wait_for(lambda: run_status_is(runtime, failed, "completed"))


async def test_metrics_count_a_turn_and_health_answers(
    console: str, client: aiohttp.ClientSession, anonymous: aiohttp.ClientSession, runtime: Runtime
) -> None:
    async def completed_turns() -> float:
        async with anonymous.get(console + "/metrics") as response:
            assert response.status == 200
            text = await response.text()
        for line in text.splitlines():
            if line.startswith('threadbot_turns_total{outcome="completed"}'):
                return float(line.split()[-1])
        raise AssertionError(text)

    before = await completed_turns()
    run_id = (await say(client, console, "t-metrics", "count me"))["run_id"]
    await wait_for(lambda: run_status_is(runtime, run_id, "completed"))
    assert await completed_turns() == before + 1
    async with anonymous.get(console + "/metrics") as response:
        text = await response.text()
    for name in (
        "threadbot_step_duration_seconds_bucket",
        "threadbot_llm_request_duration_seconds_count",
        "threadbot_queue_depth",
        "threadbot_oldest_pending_wakeup_seconds",
        "threadbot_llm_tokens_total",
        "threadbot_media_bytes_total",
    ):
        assert name in text, name
    async with anonymous.get(console + "/healthz") as response:
        assert response.status == 200
    async with anonymous.get(console + "/readyz") as response:
        assert response.status == 200
        assert (await response.json())["postgres"] == "ok"


async def test_other_pages_render(console: str, client: aiohttp.ClientSession) -> None:
    for path, expected in (
        ("/events", "Events"),
        ("/schedules", "Recurring"),
        ("/threads", "Threads"),
        ("/media", "Media"),
        ("/chains", "media-digest"),
    ):
        async with client.get(console + path) as response:
            assert response.status == 200, path
            assert expected in await response.text(), path


async def test_a_dropped_file_goes_through_the_media_flow(
    console: str, client: aiohttp.ClientSession, runtime: Runtime
) -> None:
    csrf = await csrf_of(client, console + "/playground?thread=t-file")
    form = aiohttp.FormData()
    form.add_field("thread", "t-file")
    form.add_field("text", "")
    form.add_field("file", b"Ada: the beta ships on Friday.\nLin: budget review next week.\n", filename="notes.txt")
    async with client.post(console + "/playground/upload", data=form, headers={"X-CSRF-Token": csrf}) as response:
        assert response.status == 200, await response.text()
        run_id = (await response.json())["run_id"]
    await wait_for(lambda: run_status_is(runtime, run_id, "completed"), timeout_s=30)
    events = await read_events(
        client,
        console + "/playground/stream?thread=t-file",
        lambda seen: any("notes.txt: digest below" in data.get("text", "") for _, data in seen),
    )
    assert events[0][1]["text"] == "Shared “notes.txt”"  # what the page shows for a file shared without words
    async with client.get(console + "/media") as response:
        html = await response.text()
    assert "notes.txt" in html
    assert "s-done" in html
    async with client.get(console + "/media/1") as response:
        item = await response.text()
    assert "the beta ships on Friday" in item  # its transcript
    assert "Digest" in item
    # The file was kept under DATA_DIR, in a folder of its own.
    saved = list((runtime.settings.data_dir / "uploads" / "web").glob("*/notes.txt"))
    assert len(saved) == 1
    # Without the CSRF header an upload is refused before anything is read.
    async with client.post(console + "/playground/upload", data=aiohttp.FormData({"thread": "t-file"})) as response:
        assert response.status == 403


async def test_a_reminder_arrives_in_the_open_page(
    console: str, client: aiohttp.ClientSession, runtime: Runtime, clock: Any
) -> None:
    assert (await say(client, console, "t-remind", "/remind in 2 hours water the plants"))["accepted"]

    async def fire() -> None:
        await asyncio.sleep(1.0)  # the page is following the thread by then
        clock.advance(timedelta(hours=2, minutes=1))

    firing = asyncio.create_task(fire())
    events = await read_events(
        client,
        console + "/playground/stream?thread=t-remind",
        lambda seen: any(name == "post" and "water the plants" in data["text"] for name, data in seen),
        timeout_s=20,
    )
    await firing
    assert [name for name, _ in events][:2] == ["user", "notice"]


async def test_a_recurring_schedule_is_cancelled_from_the_schedules_page(
    console: str, client: aiohttp.ClientSession, runtime: Runtime
) -> None:
    reply = await say(client, console, "t-weekly", "/remind every Monday 09:00 weekly report")
    assert reply["accepted"], reply
    async with runtime.autocommit.connect() as conn:
        schedule_id = (await conn.execute(select(SCHEDULES.c.id))).scalar_one()
    async with client.get(console + "/schedules") as response:
        html = await response.text()
    assert "weekly report" in html
    csrf = await csrf_of(client, console + "/schedules")
    async with client.post(
        f"{console}/schedules/{schedule_id}/cancel", data={"csrf": csrf}, allow_redirects=False
    ) as response:
        assert response.status == 303
    async with runtime.autocommit.connect() as conn:
        assert (await conn.execute(select(SCHEDULES.c.status))).scalar_one() == "cancelled"
    async with client.post(f"{console}/schedules/{schedule_id}/cancel", data={"csrf": csrf}) as response:
        assert response.status == 409  # already cancelled


async def test_the_chains_page_lists_each_problem_of_your_chain_files(
    runtime: Runtime, client: aiohttp.ClientSession, tmp_path: Path
) -> None:
    folder = tmp_path / "chains"
    folder.mkdir()
    (folder / "standup.yaml").write_text(
        "name: standup-notes\ndescription: d\nversion: 1\nsteps:\n  - id: notes\n    prompt: '{{ transcrpt }}'\n"
        "reply: '{{ steps.notes }}'\nneeds: [transcript]\n"
    )
    settings = runtime.settings.model_copy(update={"chains_dir": folder})
    async with serving(replace(runtime, settings=settings), TOKEN, host="127.0.0.1", port=0) as port:
        base = f"http://127.0.0.1:{port}"
        async with client.get(f"{base}/login?token={TOKEN}") as response:
            assert response.status == 200
        async with client.get(base + "/chains") as response:
            html = await response.text()
    assert "1 problem" in html
    assert "standup.yaml" in html
    assert "transcrpt" in html

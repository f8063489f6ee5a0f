"""A chain's `deliver: email` end to end: a real worker runs the chain and hands each mail over SMTP to an aiosmtpd
server in the test (or to the Resend stand-in over HTTP). One mail per run and recipient, however the run is
replayed or its worker killed; refusals are said in the thread and nothing is sent twice."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from adapters.console.inbound import console_thread, to_event
from bot.catalog import COMMANDS
from bot.config import Settings
from bot.events import SlashCommand, ThreadRef
from bot.intake import accept
from bot.preferences import set_preferences
from bot.runtime import Runtime
from bot.workflows.models import OUTBOX, RUNS, STEPS
from jobs.worker import in_process_worker
from sandbox.openai_server import StandInLLM
from sandbox.resend_server import StandInResend
from sandbox.smtp_sink import SmtpSink
from tests.conftest import make_settings, replay_after, thread_view, wait_for, worker_process

CHAIN = """
name: notes-mail
description: Notes on a topic, mailed.
version: 1
needs: [input]
steps:
  - id: notes
    prompt: "Write notes on: {{ input }}"
reply: "{{ steps.notes }}"
deliver:
  email:
    to: {input: true, prefs: true, addresses: [team@example.com]}
    subject: "Notes for {{ now[:10] }}"
    text: "{{ reply }}\\n\\n-- sent by threadbot"
CONFIRM
"""


def write_chain(folder: Path, *, confirm: bool = False) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "notes-mail.yaml").write_text(CHAIN.replace("CONFIRM", "    confirm: true" if confirm else ""))


@pytest.fixture
async def sink(tmp_path: Path) -> AsyncIterator[SmtpSink]:
    async with SmtpSink(tmp_path / "received") as server:
        yield server


@pytest.fixture
def settings(database_url: str, redis_url: str, stand_in: StandInLLM, tmp_path: Path, sink: SmtpSink) -> Settings:
    write_chain(tmp_path / "chains")
    return make_settings(
        database_url, redis_url, stand_in.base_url, tmp_path,
        smtp_host="127.0.0.1", smtp_port=sink.port, smtp_security="none", chains_dir=tmp_path / "chains",
        email_allowed_domains="example.com,acme.test",
    )  # fmt: skip


async def run_chain(runtime: Runtime, thread_name: str, text: str, *, event_id: str = "c1") -> ThreadRef:
    thread = console_thread(thread_name)
    command = SlashCommand(
        event_id=event_id, thread=thread, user_id="ada", command="/chain", text=f"run notes-mail {text}"
    )
    reply = await COMMANDS.handle(runtime, command)
    assert reply.accepted, reply.text
    return thread


async def said(runtime: Runtime, thread: ThreadRef, start: str, timeout_s: float = 30) -> str:
    async def find() -> str | None:
        return next((text for text in await thread_view(runtime, thread) if text.startswith(start)), None)

    found: str = await wait_for(find, timeout_s=timeout_s)
    return found


async def chain_run_id(runtime: Runtime) -> int:
    async with runtime.autocommit.connect() as conn:
        return int((await conn.execute(select(RUNS.c.id).where(RUNS.c.workflow == "chain_run"))).scalar_one())


async def run_finished(runtime: Runtime, run_id: int) -> bool:
    async with runtime.autocommit.connect() as conn:
        status = (await conn.execute(select(RUNS.c.status).where(RUNS.c.id == run_id))).scalar_one()
    return status in ("completed", "failed")


async def test_a_chain_delivers_its_result_once_to_each_recipient_and_says_so(
    runtime: Runtime, worker: asyncio.Task[None], sink: SmtpSink
) -> None:
    await set_preferences(runtime, "console", "local", "ada", {"email": "Ada@Example.com"})
    thread = await run_chain(runtime, "mail", "the launch, for dana@acme.test")
    report = await said(runtime, thread, "✉️")
    # The domain is compared in lower case; the local part is the receiving server's business and kept as written.
    assert report == "✉️ Sent to 3 people: team@example.com, dana@acme.test, Ada@example.com."
    assert sorted(r for mail in sink.received for r in mail.rcpt_tos) == [
        "Ada@example.com", "dana@acme.test", "team@example.com",
    ]  # fmt: skip
    assert all(len(mail.rcpt_tos) == 1 for mail in sink.received), "one message per recipient"
    mail = sink.received[0].message
    run_id = await chain_run_id(runtime)
    assert mail["To"] == "team@example.com"
    assert mail["Subject"].startswith("Notes for 20")
    assert mail["X-Threadbot-Delivery"] == f"{run_id}:deliver:email:team@example.com"
    plain, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert plain is not None
    assert html is not None
    assert plain.get_content().rstrip().endswith("-- sent by threadbot")
    assert "<p>" in html.get_content()
    assert len({m.message_id for m in sink.received}) == 3
    assert all(m.path is not None and m.path.is_file() for m in sink.received)

    # The run replayed as after a crash that lost every delivery step's result: the outbox still knows.
    await wait_for(lambda: run_finished(runtime, run_id))
    lost = ["deliver:recipients", "deliver:render", "deliver:email.0", "deliver:email.1", "deliver:email.2",
            "deliver:report"]  # fmt: skip
    await replay_after(runtime, run_id, 0, lost, "completed")
    assert len(sink.received) == 3, "nobody got the email twice"
    reports = [text for text in await thread_view(runtime, thread) if text.startswith("✉️")]
    assert reports == [report], "the report was not posted again"


async def test_a_worker_killed_while_handing_over_the_mail_does_not_send_it_twice(
    runtime: Runtime, sink: SmtpSink, tmp_path: Path
) -> None:
    release = sink.hold_data()  # the message is received, then the server says nothing until released
    env = {
        "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(sink.port), "SMTP_SECURITY": "none", "SMTP_TIMEOUT_S": "60",
        "CHAINS_DIR": str(tmp_path / "chains"), "EMAIL_ALLOWED_DOMAINS": "example.com",
    }  # fmt: skip
    thread = await run_chain(runtime, "kill", "the launch")
    async with worker_process(runtime, "A", **env) as first:
        await asyncio.wait_for(sink.data_started.wait(), 60)
        first.send_signal(signal.SIGKILL)
        await first.wait()
    release.set()
    sink.script.hold_data = None
    async with worker_process(runtime, "B", **env):
        report = await said(runtime, thread, "⚠️ Sending to", timeout_s=60)
        run_id = await chain_run_id(runtime)
        await wait_for(lambda: run_finished(runtime, run_id), timeout_s=30)
    print(f"\nkilled mid-DATA: mails received={len(sink.received)}; thread says: {report!r}")
    assert len(sink.received) == 1, "exactly one mail, though the worker died before the server answered"
    assert "may or may not have arrived; it was not sent again" in report
    async with runtime.autocommit.connect() as conn:
        states = (await conn.execute(select(OUTBOX.c.state).where(OUTBOX.c.platform == "email"))).scalars().all()
    assert states == ["intent"]


async def test_each_refusal_is_said_in_the_thread_and_nothing_is_sent_for_it(
    runtime: Runtime, worker: asyncio.Task[None], sink: SmtpSink
) -> None:
    sink.refuse("gone@example.com")
    text = "the launch for dana@acme.test, bob@evil.test, not-an-address@ and gone@example.com"
    thread = await run_chain(runtime, "refusals", text)
    report = await said(runtime, thread, "✉️")
    assert report.splitlines() == [
        "✉️ Sent to 2 people: team@example.com, dana@acme.test.",
        "⚠️ Not sent to bob@evil.test: email may only go to acme.test, example.com (EMAIL_ALLOWED_DOMAINS)",
        "⚠️ Not sent to not-an-address@: that is not an email address",
        "⚠️ Not sent to gone@example.com: the mail server refused gone@example.com: 5.1.1 No such user here",
    ]
    assert sorted(r for mail in sink.received for r in mail.rcpt_tos) == ["dana@acme.test", "team@example.com"]
    run_id = await chain_run_id(runtime)
    async with runtime.autocommit.connect() as conn:
        refused = (
            await conn.execute(
                select(STEPS.c.attempts).where(STEPS.c.run_id == run_id, STEPS.c.step_id == "deliver:email.2")
            )
        ).scalar_one()
    assert refused == 1, "a permanent refusal is not retried"


async def test_with_nobody_to_send_to_the_thread_is_told_why(
    runtime: Runtime, worker: asyncio.Task[None], sink: SmtpSink, tmp_path: Path
) -> None:
    (tmp_path / "chains" / "notes-mail.yaml").write_text(
        CHAIN.replace("CONFIRM", "").replace("addresses: [team@example.com]", "addresses: []")
    )
    thread = await run_chain(runtime, "nobody", "the launch")
    report = await said(runtime, thread, "⚠️")
    assert report == (
        "⚠️ The email was not sent. I found nobody to send it to: no address was written after the chain's name and "
        "nobody in this thread has set an address (/prefs set email=you@example.com)."
    )
    assert sink.received == []


async def test_a_busy_server_is_retried_and_the_mail_sent_once(
    runtime: Runtime, worker: asyncio.Task[None], sink: SmtpSink
) -> None:
    sink.busy(2)  # 451 to the first two RCPTs
    thread = await run_chain(runtime, "busy", "the launch")
    assert await said(runtime, thread, "✉️") == "✉️ Sent to 1 person: team@example.com."
    assert len(sink.received) == 1


async def test_send_as_email_waits_for_the_users_go_ahead(
    runtime: Runtime, worker: asyncio.Task[None], sink: SmtpSink, tmp_path: Path
) -> None:
    write_chain(tmp_path / "chains", confirm=True)
    thread = await run_chain(runtime, "confirm", "the launch")
    question = await said(runtime, thread, "✉️ Send as email?")
    assert "to team@example.com" in question
    assert "Reply **send**" in question
    await asyncio.sleep(0.5)
    assert sink.received == [], "nothing is sent before the user says so"
    await accept(runtime, to_event("send", "confirm", user="ada"))
    assert await said(runtime, thread, "✉️ Sent") == "✉️ Sent to 1 person: team@example.com."
    assert len(sink.received) == 1

    declined = await run_chain(runtime, "decline", "the launch", event_id="c2")
    await said(runtime, declined, "✉️ Send as email?")
    await accept(runtime, to_event("no, not yet", "decline", user="ada"))
    assert await said(runtime, declined, "OK,") == "OK, the email was not sent."
    assert len(sink.received) == 1


async def test_through_resend_each_recipient_gets_one_email_under_its_idempotency_key(
    runtime: Runtime, sink: SmtpSink
) -> None:
    async with StandInResend(api_key="re_test") as resend:
        settings = runtime.settings.model_copy(
            update={"resend_api_key": SecretStr("re_test"), "resend_base_url": resend.base_url}
        )
        resend.fail_next(1, status=500)
        async with in_process_worker(settings, clock=runtime.clock):
            thread = await run_chain(runtime, "resend", "the launch for dana@acme.test")
            assert await said(runtime, thread, "✉️") == "✉️ Sent to 2 people: team@example.com, dana@acme.test."
            run_id = await chain_run_id(runtime)
            await wait_for(lambda: run_finished(runtime, run_id))
            await replay_after(
                runtime, run_id, 0, ["deliver:email.0", "deliver:email.1", "deliver:report"], "completed"
            )
    keys = [request.idempotency_key for request in resend.requests]
    assert keys[0] == keys[1] == f"{run_id}:deliver:email:team@example.com", "the retry after a 500 used the same key"
    assert f"{run_id}:deliver:email:dana@acme.test" in keys
    assert [request.status for request in resend.requests] == [500, 200, 200]
    assert sorted(email["to"][0] for email in resend.sent) == ["dana@acme.test", "team@example.com"]
    assert sink.received == [], "with RESEND_API_KEY set, SMTP is not used"
    sent: dict[str, Any] = resend.sent[0]
    assert sent["headers"]["Message-ID"].endswith("@localhost>")


async def test_a_chain_that_digests_a_shared_file_delivers_its_digest_too(
    runtime: Runtime, worker: asyncio.Task[None], sink: SmtpSink, tmp_path: Path
) -> None:
    from adapters.console.app import ConsoleSession
    from adapters.console.files import file_ref

    (tmp_path / "chains" / "call-notes.yaml").write_text(
        "name: call-notes\ndescription: Notes of a call, mailed.\nversion: 1\ntriggers: {file_types: [.vtt]}\n"
        "needs: [transcript]\nsteps:\n  - id: notes\n    prompt: 'Notes: {{ transcript.text }}'\n"
        "reply: '{{ steps.notes }}'\n"
        "deliver:\n  email:\n    to: {addresses: [team@example.com]}\n    subject: 'Notes of {{ media.name }}'\n"
    )
    vtt = tmp_path / "call.vtt"
    vtt.write_text("WEBVTT\n\n00:00:01.000 --> 00:00:04.000\n<v Ada>We ship the beta on Friday.\n")
    result = await ConsoleSession(runtime, user="ada").send("", "call", files=(file_ref(vtt),), worker=worker)
    assert result.status == "completed"
    assert await said(runtime, console_thread("call"), "✉️") == "✉️ Sent to 1 person: team@example.com."
    [mail] = sink.received
    assert mail.message["Subject"] == "Notes of call.vtt"


async def test_on_the_embedded_default_the_mail_is_kept_under_data_dir(runtime: Runtime, sink: SmtpSink) -> None:
    from bot.mail.folder import kept_mail, mail_folder

    settings = runtime.settings.model_copy(update={"smtp_host": ""})  # no SMTP_HOST, no RESEND_API_KEY
    async with in_process_worker(settings, clock=runtime.clock):
        thread = await run_chain(runtime, "embedded", "the launch")
        assert await said(runtime, thread, "✉️") == "✉️ Sent to 1 person: team@example.com."
    [kept] = kept_mail(settings)
    assert kept.path.parent == mail_folder(settings) == settings.data_dir / "mail"
    assert kept.message["To"] == "team@example.com"
    assert kept.text.rstrip().endswith("-- sent by threadbot")
    assert sink.received == [], "the test's own server was not used"

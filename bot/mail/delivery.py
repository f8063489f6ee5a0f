"""A chain's `deliver: email` as durable steps of its run: who gets it (`deliver:recipients`), what it says
(`deliver:render`), the user's go-ahead when the chain asks for one (`deliver:confirm`), one step per recipient
(`deliver:email.N`) and the line in the thread saying what happened (`deliver:report`). A media turn prefixes
them with its file (`f0.deliver:...`).

Each send is recorded in the outbox under `{run}:deliver:email:{address}` (platform `email`), written before the
call and marked sent after it, so a recipient gets one mail per run however often the run is replayed. A send
that stopped half-way (a worker killed, a connection lost during DATA) is repeated only through a transport that
dedupes by key (Resend); over SMTP it is reported as possibly delivered, never sent a second time."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import structlog
from sqlalchemy import bindparam, delete, func, literal_column, update
from sqlalchemy.dialects.postgresql import insert

from bot.chains.runner import render_field
from bot.chains.spec import Chain, EmailDelivery
from bot.conversation import ask_in_thread, post
from bot.errors import ConfigurationError, MailMaybeSent
from bot.events import ThreadRef
from bot.failures import failure_reason
from bot.mail.addresses import addresses_in, domain_allowed, is_address, normalise
from bot.mail.compose import message_id_for
from bot.ports import Mailer, OutgoingEmail
from bot.stores.messages import thread_authors
from bot.stores.preferences import load_emails
from bot.workflows.errors import StepFailed
from bot.workflows.models import OUTBOX
from bot.workflows.steps import WorkflowContext

log = structlog.get_logger(__name__)
CONFIRM_WORDS = frozenset({"send", "yes", "y", "ok", "confirm", "send it"})
LEDGER_PLATFORM = "email"

o = OUTBOX.c
_CLAIM = (
    insert(OUTBOX)
    .values(key=bindparam("b_key"), run_id=bindparam("b_run_id"), platform=LEDGER_PLATFORM, state="intent")
    .on_conflict_do_update(index_elements=["key"], set_={"updated_at": func.now()})
    .returning(o.state, o.message_id, literal_column("xmax = 0").label("inserted"))
)
_SENT = (
    update(OUTBOX)
    .where(o.key == bindparam("b_where_key"))
    .values(state="sent", message_id=bindparam("b_message_id"), updated_at=func.now())
)
_RELEASE = delete(OUTBOX).where(o.key == bindparam("b_key"), o.state == "intent")


async def deliver_result(
    ctx: WorkflowContext,
    chain: Chain,
    view: Mapping[str, Any],
    outputs: Mapping[str, Any],
    reply: str,
    *,
    thread: ThreadRef,
    thread_id: int,
    user_id: str,
    up_to: int | None = None,
    prefix: str = "deliver",
) -> dict[str, Any]:
    """Send the chain's result as its `deliver: email` says, and say in the thread what became of it. Its steps
    are `<prefix>:...` (a media turn digests several files in one run, each with its own)."""
    spec = chain.deliver.email
    if spec is None:
        return {}
    scope = {**view, "steps": dict(outputs), "reply": reply}
    report_step = f"{prefix}:report"
    found = await ctx.step.run(
        f"{prefix}:recipients",
        partial(resolve_recipients, ctx, spec, str(view.get("input") or ""), thread, thread_id, user_id, up_to),
    )
    valid: list[str] = found["valid"]
    refused: list[dict[str, str]] = found["refused"]
    if not valid:
        text = report([], refused, found.get("none_found", ""))
        await ctx.step.run(report_step, partial(post, ctx, report_step, thread, text))
        return {"sent": [], "refused": refused}
    try:
        rendered = await ctx.step.run(f"{prefix}:render", partial(render_email, chain, spec, scope))
    except StepFailed as exc:
        text = f"⚠️ The email was not sent: {failure_reason(exc)}"
        await ctx.step.run(report_step, partial(post, ctx, report_step, thread, text))
        return {"sent": [], "refused": refused, "error": exc.error}
    if spec.confirm and not await _confirmed(ctx, prefix, spec, rendered, valid, thread, thread_id, user_id):
        return {"sent": [], "refused": refused, "confirmed": False}
    outcomes: list[dict[str, str]] = []
    for index, address in enumerate(valid):
        email = _email_for(ctx, f"{prefix}:email:{address}", rendered, address)
        try:
            outcome = await ctx.step.run(f"{prefix}:email.{index}", partial(send_once, ctx, email))
        except StepFailed as exc:
            outcome = {"address": address, "status": "refused", "reason": failure_reason(exc)}
        outcomes.append(outcome)
    text = report(outcomes, refused)
    await ctx.step.run(report_step, partial(post, ctx, report_step, thread, text))
    return {"sent": [o["address"] for o in outcomes if o["status"] == "sent"], "outcomes": outcomes, "refused": refused}


async def resolve_recipients(
    ctx: WorkflowContext,
    spec: EmailDelivery,
    input_text: str,
    thread: ThreadRef,
    thread_id: int,
    user_id: str,
    up_to: int | None,
) -> dict[str, Any]:
    """Who the email may go to ("valid"), who it may not and why ("refused"), from the sources the chain names."""
    settings = ctx.runtime.settings
    candidates: list[str] = list(spec.to.addresses)
    hints: list[str] = []
    if spec.to.input:
        candidates += addresses_in(input_text)
        hints.append("no address was written after the chain's name")
    if spec.to.prefs:
        users = await thread_authors(ctx.runtime, thread_id, up_to=up_to)
        users = users if user_id in users else [user_id, *users]
        async with ctx.runtime.autocommit.connect() as conn:
            emails = await load_emails(conn, thread.platform, thread.workspace_id, users)
        candidates += [emails[user] for user in users if user in emails]
        hints.append("nobody in this thread has set an address (/prefs set email=you@example.com)")
    valid: list[str] = []
    refused: list[dict[str, str]] = []
    for raw in candidates:
        address = normalise(raw)
        if address in valid or any(r["address"] == address for r in refused):
            continue
        if not is_address(address):
            refused.append({"address": address, "reason": "that is not an email address"})
        elif not domain_allowed(address, settings.email_allowed_domains):
            allowed = ", ".join(sorted(settings.email_allowed_domains))
            refused.append({"address": address, "reason": f"email may only go to {allowed} (EMAIL_ALLOWED_DOMAINS)"})
        elif len(valid) >= settings.email_max_recipients:
            limit = settings.email_max_recipients
            refused.append({"address": address, "reason": f"one email goes to at most {limit} people"})
        else:
            valid.append(address)
    none_found = "" if candidates else "I found nobody to send it to: " + " and ".join(hints or ["no address"]) + "."
    return {"valid": valid, "refused": refused, "none_found": none_found}


async def render_email(chain: Chain, spec: EmailDelivery, scope: Mapping[str, Any]) -> dict[str, str]:
    rendered = {
        field: render_field(chain, "its email", field, getattr(spec, field), scope, html=field == "html").strip()
        for field in ("subject", "text", "html")
    }
    rendered["subject"] = " ".join(rendered["subject"].split())[:250] or chain.description[:250]
    return rendered


def _email_for(ctx: WorkflowContext, step: str, rendered: Mapping[str, str], address: str) -> OutgoingEmail:
    sender = ctx.runtime.settings.email_from
    key = ctx.key(step)  # run, step and recipient
    return OutgoingEmail(
        sender=sender,
        to=address,
        subject=rendered["subject"],
        text=rendered["text"],
        html=rendered["html"],
        message_id=message_id_for(key, sender),
        idempotency_key=key,
    )


async def send_once(ctx: WorkflowContext, email: OutgoingEmail) -> dict[str, str]:
    """Send `email` unless the outbox says an attempt of this run already did (or may have)."""
    mailer: Mailer | None = ctx.deps.mailer
    if mailer is None:
        raise ConfigurationError("this worker has no mailer configured")
    runtime = ctx.runtime
    async with runtime.autocommit.connect() as conn:
        claimed = (await conn.execute(_CLAIM, {"b_key": email.idempotency_key, "b_run_id": ctx.run_id})).one()
    if claimed.state == "sent":
        return {"address": email.to, "status": "sent", "id": claimed.message_id or ""}
    if not claimed.inserted and not mailer.dedupes:
        # An earlier attempt claimed this send and never finished: it may have been delivered. Not again.
        log.warning("email delivery interrupted earlier; not sending again", to=email.to, key=email.idempotency_key)
        return {"address": email.to, "status": "uncertain", "id": ""}
    try:
        sent_id = await mailer.send(email)
    except MailMaybeSent:
        raise  # the claim stays: the retry finds it and does not send again over SMTP
    except BaseException:
        async with runtime.autocommit.connect() as conn:
            await conn.execute(_RELEASE, {"b_key": email.idempotency_key})  # nothing was taken: a retry may send
        raise
    async with runtime.autocommit.connect() as conn:
        await conn.execute(_SENT, {"b_where_key": email.idempotency_key, "b_message_id": sent_id[:128]})
    log.info("email sent", to=email.to, via=mailer.name, id=sent_id)
    return {"address": email.to, "status": "sent", "id": sent_id}


async def _confirmed(
    ctx: WorkflowContext,
    prefix: str,
    spec: EmailDelivery,
    rendered: Mapping[str, str],
    recipients: list[str],
    thread: ThreadRef,
    thread_id: int,
    user_id: str,
) -> bool:
    # Buttons are not there yet on every platform: the go-ahead is the user's next message in the thread.
    question = (
        f"✉️ Send as email? “{rendered['subject']}” to {', '.join(recipients)}. "
        "Reply **send** to send it; anything else leaves it unsent."
    )
    answer = await ask_in_thread(
        ctx, f"{prefix}:confirm", thread, thread_id=thread_id, user_id=user_id, question=question,
        timeout_s=spec.confirm_timeout, nudge="No answer, so the email was not sent.",
    )  # fmt: skip
    if answer is None:
        return False
    if answer.strip().strip(".!").lower() in CONFIRM_WORDS:
        return True
    declined = f"{prefix}:declined"
    await ctx.step.run(declined, partial(post, ctx, declined, thread, "OK, the email was not sent."))
    return False


def report(outcomes: list[dict[str, str]], refused: list[dict[str, str]], none_found: str = "") -> str:
    """One message for the thread: who got it, whose delivery may or may not have arrived, who did not and why."""
    sent = [o["address"] for o in outcomes if o["status"] == "sent"]
    uncertain = [o["address"] for o in outcomes if o["status"] == "uncertain"]
    failed = [
        *refused,
        *({"address": o["address"], "reason": o["reason"]} for o in outcomes if o["status"] == "refused"),
    ]
    lines: list[str] = []
    if sent:
        people = "1 person" if len(sent) == 1 else f"{len(sent)} people"
        lines.append(f"✉️ Sent to {people}: {', '.join(sent)}.")
    elif not uncertain:
        lines.append("⚠️ The email was not sent." + (f" {none_found}" if none_found else ""))
    if uncertain:
        lines.append(
            f"⚠️ Sending to {', '.join(uncertain)} was interrupted, so it may or may not have arrived; "
            "it was not sent again, so nobody gets it twice."
        )
    lines += [f"⚠️ Not sent to {f['address']}: {f['reason']}" for f in failed]
    return "\n".join(lines)

"""Follow-up workflows: a one-off reminder (a durable sleep), a recurring schedule's firing, a follow-up that
nudges a thread nobody answered (a durable wait on the thread's messages)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from bot.conversation import mention, post
from bot.costs.budgets import BudgetExhausted
from bot.costs.metered import metered
from bot.costs.usage import Payer
from bot.events import ThreadRef
from bot.followups.models import SCHEDULES
from bot.models import MESSAGES
from bot.ports import ChatMessage
from bot.threads import THREAD_MESSAGE
from bot.workflows.registry import workflow
from bot.workflows.steps import WorkflowContext

REMINDER = "reminder"
RECURRING = "recurring_reminder"
FOLLOWUP = "followup"


@dataclass(frozen=True, slots=True)
class ReminderInput:
    thread: ThreadRef
    user_id: str
    text: str
    due: datetime


@dataclass(frozen=True, slots=True)
class RecurringInput:
    schedule_id: int
    thread: ThreadRef
    user_id: str
    text: str
    tick: datetime  # the schedule's time this firing is for (its dedupe key says it too)


@dataclass(frozen=True, slots=True)
class FollowupInput:
    thread: ThreadRef
    thread_id: int
    after_s: float
    after_label: str  # how the wait was asked for ("2 hours"), for the nudge's words
    user_id: str = ""
    note: str = ""


@workflow(REMINDER, input=ReminderInput, description="Sleep until the time the user asked for, then post the reminder.")
async def reminder(ctx: WorkflowContext, input: ReminderInput) -> dict[str, Any]:
    thread = input.thread
    await ctx.step.sleep_until("wait", input.due)
    text = f"⏰ Reminder for {mention(input.user_id, thread)}: {input.text}"
    message_id = await ctx.step.run("post", lambda: post(ctx, "post", thread, text))
    return {"message_id": message_id}


@workflow(RECURRING, input=RecurringInput, description="One firing of a recurring schedule: post its reminder.")
async def recurring_reminder(ctx: WorkflowContext, input: RecurringInput) -> dict[str, Any]:
    thread = input.thread

    async def fire() -> str | None:
        async with ctx.runtime.autocommit.connect() as conn:
            status = (
                await conn.execute(select(SCHEDULES.c.status).where(SCHEDULES.c.id == input.schedule_id))
            ).scalar_one_or_none()
        if status != "active":
            return None  # cancelled after this firing was queued
        text = f"🔁 {mention(input.user_id, thread)}: {input.text}"
        return await post(ctx, "post", thread, text)

    return {"message_id": await ctx.step.run("post", fire)}


@workflow(FOLLOWUP, input=FollowupInput, description="If nobody writes in the thread in time, nudge it with a summary.")
async def followup(ctx: WorkflowContext, input: FollowupInput) -> dict[str, Any]:
    thread = input.thread
    activity = await ctx.step.wait_for_event(
        "quiet", THREAD_MESSAGE, match={"thread_id": input.thread_id}, timeout=input.after_s
    )
    if activity is not None:
        data = activity["data"]
        return {"nudged": False, "answered_by": data.get("user_id") or data.get("sharer_id", "")}

    async def nudge() -> str:
        summary = await summarize_thread(ctx, input.thread_id, Payer.of(thread, input.user_id))
        note = f" {input.note}" if input.note else ""
        text = f"👋 Nobody has written here for {input.after_label}.{note}\n\n*Where this thread stands:* {summary}"
        return await post(ctx, "nudge", thread, text)

    return {"nudged": True, "message_id": await ctx.step.run("nudge", nudge)}


async def summarize_thread(ctx: WorkflowContext, thread_id: int, payer: Payer) -> str:
    """Two or three sentences on where the thread stands, on the account of whoever set up the follow-up (an
    exhausted budget says so in the summary's place: the nudge itself still goes out)."""
    m = MESSAGES.c
    async with ctx.runtime.autocommit.connect() as conn:
        rows = (
            await conn.execute(
                select(m.role, m.text)
                .where(m.thread_id == thread_id, m.status == "completed")
                .order_by(m.id.desc())
                .limit(40)
            )
        ).all()
    transcript = "\n".join(f"{role}: {text}" for role, text in reversed(rows)) or "(no messages yet)"
    prompt = [
        ChatMessage("system", "Summarize this chat thread in two or three sentences: what was asked, what is open."),
        ChatMessage("user", transcript),
    ]
    try:
        async with metered(ctx, payer, "summary") as usage:
            parts = [delta async for delta in ctx.deps.llm.stream_chat(prompt, max_tokens=300, usage=usage)]
    except BudgetExhausted as exc:
        return f"(no summary: {exc.user_message[0].lower()}{exc.user_message[1:]})"
    return "".join(parts).strip() or "(no summary)"

"""Talking in a thread from inside a workflow: posting once per step, mentioning a user in the platform's own
syntax, and asking a question whose answer the run waits for (durably, with a timeout)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select

from bot.events import ThreadRef
from bot.threads import THREAD_MESSAGE
from bot.workflows.steps import WorkflowContext


async def post(ctx: WorkflowContext, step_id: str, thread: ThreadRef, text: str) -> str:
    """Post once per run and step, through the outbox."""
    posted = await ctx.platform(thread).post_message(thread, text, idempotency_key=ctx.key(step_id))
    return posted.message_id


def mention(user_id: str, thread: ThreadRef) -> str:
    # Slack and Discord render <@id> as a mention; the console and the web playground show the plain name.
    return user_id if thread.platform in ("console", "web") else f"<@{user_id}>"


async def ask_in_thread(
    ctx: WorkflowContext,
    step_id: str,
    thread: ThreadRef,
    *,
    thread_id: int,
    user_id: str,
    question: str,
    timeout_s: float,
    nudge: str = "",
) -> str | None:
    """Ask `user_id` a question in the thread and return their next message there, or None after `timeout_s`
    (posting `nudge` if given). The answer is consumed: it does not also start a chat turn."""

    async def ask() -> str:
        async with ctx.runtime.autocommit.connect() as conn:
            asked_at = (await conn.execute(select(func.now()))).scalar_one()
        await post(ctx, f"{step_id}.ask", thread, question)
        return str(asked_at.isoformat())

    # An answer typed while the question was being posted still counts: the wait looks back to before the post.
    asked_at = datetime.fromisoformat(await ctx.step.run(f"{step_id}.ask", ask))
    answer = await ctx.step.wait_for_event(
        f"{step_id}.answer",
        THREAD_MESSAGE,
        match={"thread_id": thread_id, "user_id": user_id},
        timeout=timedelta(seconds=timeout_s),
        consume=True,
        since=asked_at,
    )
    if answer is None:
        if nudge:
            await ctx.step.run(f"{step_id}.nudge", lambda: post(ctx, f"{step_id}.nudge", thread, nudge))
        return None
    return str(answer["data"]["text"])

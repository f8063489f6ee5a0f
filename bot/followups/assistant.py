"""Follow-ups the assistant schedules itself: the model gets a `schedule_followup` tool in every chat turn, and a
call to it starts a `followup` run (a durable wait on the thread, then a nudge with a summary)."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import structlog

from bot.errors import InvalidInput
from bot.events import ThreadRef
from bot.followups.parse import OneOff, describe_duration, parse_when
from bot.followups.workflows import FollowupInput, followup
from bot.ports import Tool, ToolCall
from bot.workflows.runs import start_run
from bot.workflows.steps import WorkflowContext

log = structlog.get_logger(__name__)
MAX_AFTER = timedelta(days=30)

SCHEDULE_FOLLOWUP = Tool(
    name="schedule_followup",
    description=(
        "Schedule a follow-up in this thread: if nobody writes here within `after`, you will post a nudge with a "
        "summary of the thread. Use it when the user asks you to check back, follow up, or nudge people later."
    ),
    parameters={
        "type": "object",
        "properties": {
            "after": {"type": "string", "description": "How long to wait, e.g. '30 minutes', '2 hours', '1 day'."},
            "note": {"type": "string", "description": "What the nudge should remind people of."},
        },
        "required": ["after"],
    },
)


async def schedule_from_tool(
    ctx: WorkflowContext, call: ToolCall, index: int, *, thread: ThreadRef, thread_id: int, user_id: str
) -> str:
    """Start the follow-up the model asked for (once per reply step) in the turn's thread and return a line for
    the reply."""
    after = str(call.arguments.get("after", "")).strip()
    note = str(call.arguments.get("note", "")).strip()[:500]
    try:
        parsed = parse_when(f"in {after}", ZoneInfo("UTC"), ctx.clock.now(), require_text=False)
    except InvalidInput as exc:
        log.info("model asked for an unreadable follow-up", after=after)
        return f"_(I couldn't schedule the follow-up: {exc.user_message})_"
    if not isinstance(parsed, OneOff) or parsed.text:
        return f"_(I couldn't schedule the follow-up: {after!r} is not a duration.)_"
    wait = min(parsed.due - ctx.clock.now(), MAX_AFTER)
    label = describe_duration(wait)
    started = await start_run(
        ctx.runtime,
        followup,
        FollowupInput(thread, thread_id, wait.total_seconds(), label, user_id=user_id, note=note),
        dedupe_key=f"{ctx.key('reply')}:followup:{index}",
        thread_id=thread_id,
        user_id=user_id or None,
        description=f"follow up if quiet for {label}" + (f": {note}" if note else ""),
    )
    log.info("assistant scheduled a follow-up", followup_run=started.run_id, after_s=wait.total_seconds())
    return f"_(I'll check back here in {label} if nobody replies; /remind cancel r{started.run_id} to cancel.)_"

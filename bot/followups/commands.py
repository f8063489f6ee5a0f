"""`/remind` and `/followup`, from any platform (see `bot.commands`).

/remind in 2 hours check the deploy      one-off: a durable sleep in a `reminder` run
/remind every Monday 09:00 weekly report recurring: a `schedules` row the scheduler leader fires
/remind list                             your scheduled items in this workspace (`list here`: this thread's)
/remind cancel r12 | s3                  cancel one of them
/followup in 1 day [note]                nudge this thread with a summary if nobody writes in it by then
"""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from bot.commands import Command, CommandReply
from bot.errors import InvalidInput
from bot.events import SlashCommand
from bot.followups.parse import OneOff, describe_duration, parse_when
from bot.followups.triggers import build_trigger
from bot.followups.workflows import FOLLOWUP, REMINDER
from bot.guards import validate_text
from bot.runtime import Runtime
from bot.stores.followups import cancel_schedule, count_active, create_schedule, list_scheduled, owns_run
from bot.stores.preferences import load_preferences
from bot.threads import ensure_thread, thread_to_json
from bot.workflows.runs import cancel_run, start_run

USAGE = (
    "Usage: /remind in 2 hours check the deploy · /remind tomorrow 9am standup · /remind Dec 25 9am call mum · "
    "/remind every Monday 09:00 weekly report · /remind every month on the 1st invoices · "
    "/remind list [here] · /remind cancel ID"
)


async def user_zone(runtime: Runtime, command: SlashCommand) -> ZoneInfo:
    where = command.thread
    async with runtime.autocommit.connect() as conn:
        prefs = await load_preferences(conn, where.platform, where.workspace_id, command.user_id)
    return ZoneInfo(prefs.timezone if prefs is not None and prefs.timezone else "UTC")


async def remind(runtime: Runtime, command: SlashCommand) -> CommandReply:
    text = command.text.strip()
    word = text.split(maxsplit=1)[0].lower() if text else ""
    if not text or word == "help":
        return CommandReply(USAGE, accepted=not text)
    if word == "list":
        return CommandReply(await list_items(runtime, command, here=text.lower().endswith("here")))
    if word == "cancel":
        return await cancel_item(runtime, command, text.split(maxsplit=1)[1] if " " in text else "")
    validate_text(text, runtime.settings)  # the same rules as a message: length, encoding, no NUL
    tz = await user_zone(runtime, command)
    parsed = parse_when(text, tz, runtime.clock.now(), min_repeat_s=runtime.settings.min_repeat_interval_s)
    await check_quota(runtime, command)
    thread_id = await ensure_thread(runtime, command.thread)
    key = f"remind:{command.thread.platform}:{command.thread.workspace_id}:{command.event_id}"
    if isinstance(parsed, OneOff):
        started = await start_run(
            runtime,
            REMINDER,
            {
                "thread": thread_to_json(command.thread),
                "user_id": command.user_id,
                "text": parsed.text,
                "due": parsed.due.isoformat(),
            },
            dedupe_key=key,
            thread_id=thread_id,
            user_id=command.user_id,
            description=f"{parsed.describe(tz)}: {parsed.text}",
        )
        return CommandReply(
            f"⏰ I'll remind you {parsed.describe(tz)}: {parsed.text} "
            f"(id r{started.run_id}; /remind cancel r{started.run_id} to cancel)"
        )
    schedule_id = await create_schedule(
        runtime,
        thread_id=thread_id,
        user_id=command.user_id,
        spec=command.text.strip(),
        trigger=parsed.trigger,
        timezone=tz.key,
        text=parsed.text,
        dedupe_key=key,
    )
    upcoming = build_trigger(parsed.trigger).get_next_fire_time(None, runtime.clock.now().astimezone(tz))
    first = f" First on {upcoming.astimezone(tz):%a %d %b at %H:%M %Z}." if upcoming else ""
    return CommandReply(
        f"🔁 I'll remind you {parsed.description}: {parsed.text}.{first} "
        f"(id s{schedule_id}; /remind cancel s{schedule_id} to stop)"
    )


async def check_quota(runtime: Runtime, command: SlashCommand) -> None:
    """A user's active reminders, follow-ups and schedules in a workspace are bounded (MAX_SCHEDULED_PER_USER)."""
    limit = runtime.settings.max_scheduled_per_user
    if limit <= 0:
        return
    active = await count_active(runtime, command.thread, command.user_id)
    if active >= limit:
        raise InvalidInput(
            f"You have {active} reminders and follow-ups scheduled here; the limit is {limit}. "
            "Cancel some first (/remind list, then /remind cancel ID)."
        )


async def list_items(runtime: Runtime, command: SlashCommand, *, here: bool) -> str:
    scheduled = await list_scheduled(runtime, command.thread, command.user_id, here=here)
    if not scheduled.runs and not scheduled.schedules:
        return "Nothing scheduled " + ("in this thread." if here else "for you here.")
    lines = ["Scheduled " + ("in this thread:" if here else "for you:")]
    lines += [f"• r{run.id} — {run.description or run.workflow}" for run in scheduled.runs]
    lines += [f"• s{schedule.id} — {schedule.spec}" for schedule in scheduled.schedules]
    return "\n".join(lines)


async def cancel_item(runtime: Runtime, command: SlashCommand, item: str) -> CommandReply:
    item = item.strip().lower()
    if len(item) < 2 or item[0] not in "rs" or not item[1:].isdigit():
        return CommandReply("Which one? Give its id from /remind list, e.g. /remind cancel r12.", accepted=False)
    number = int(item[1:])
    if item[0] == "r":
        owned = await owns_run(runtime, command.thread, command.user_id, number)
    else:
        owned = await cancel_schedule(runtime, command.thread, command.user_id, number)
    if not owned:
        return CommandReply(f"You have no active item {item} here. See /remind list.", accepted=False)
    if item[0] == "r" and not await cancel_run(runtime, number, reason=f"cancelled by {command.user_id}"):
        return CommandReply(f"{item} has already happened or was cancelled.", accepted=False)
    return CommandReply(f"Cancelled {item}.")


async def followup(runtime: Runtime, command: SlashCommand) -> CommandReply:
    """/followup in 1 day [note]: nudge this thread with a summary if nobody writes in it by then."""
    text = command.text.strip()
    if not text.lower().startswith("in "):
        return CommandReply("Usage: /followup in 1 day [what to check] — I nudge this thread if it goes quiet.", False)
    parsed = parse_when(text, ZoneInfo("UTC"), runtime.clock.now(), require_text=False)
    if not isinstance(parsed, OneOff):
        raise InvalidInput("A follow-up happens once; use /remind every … for repeats.")
    await check_quota(runtime, command)
    after = parsed.due - runtime.clock.now()
    return await start_followup(runtime, command, after, describe_duration(after), parsed.text)


async def start_followup(
    runtime: Runtime, command: SlashCommand, after: timedelta, label: str, note: str, *, dedupe_key: str = ""
) -> CommandReply:
    thread_id = await ensure_thread(runtime, command.thread)
    started = await start_run(
        runtime,
        FOLLOWUP,
        {
            "thread": thread_to_json(command.thread),
            "thread_id": thread_id,
            "user_id": command.user_id,
            "after_s": after.total_seconds(),
            "after_label": label,
            "note": note,
        },
        dedupe_key=dedupe_key or f"followup:{command.thread.platform}:{command.thread.workspace_id}:{command.event_id}",
        thread_id=thread_id,
        user_id=command.user_id,
        description=f"follow up if quiet for {label}" + (f": {note}" if note else ""),
    )
    return CommandReply(
        f"👋 If nobody writes here within {label}, I'll nudge this thread with a summary "
        f"(id r{started.run_id}; /remind cancel r{started.run_id} to cancel)."
    )


REMIND = Command(
    "remind",
    "Schedule a reminder.",
    "/remind in 2 hours check the deploy | every Monday 09:00 … | list | cancel",
    remind,
)
FOLLOWUP_COMMAND = Command(
    "followup", "Nudge this thread with a summary if it goes quiet.", "/followup in 1 day [note]", followup
)

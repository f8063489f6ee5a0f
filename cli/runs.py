"""`bot runs`: the operator's view of workflow runs (list, show, retry, cancel) and of a message's fate."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.table import Table

runs_app = typer.Typer(
    help="Workflow runs: list, show (steps, timings, errors), retry, cancel; message (what became of a message).",
    no_args_is_help=True,
)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def _duration(start: datetime, end: datetime | None) -> str:
    return f"{(end - start).total_seconds() * 1000:.0f} ms" if end else ""


def _print_json(value: Any) -> None:
    """One JSON document on stdout (dataclasses as objects, times in ISO 8601), for scripts and `jq`."""
    typer.echo(json.dumps(_plain(value), ensure_ascii=False, indent=2))


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@runs_app.command("list")
def list_command(
    status: Annotated[str, typer.Option(help="Only runs in this status (pending, running, sleeping, ...).")] = "",
    workflow: Annotated[str, typer.Option(help="Only runs of this workflow (chat_turn, reminder, ...).")] = "",
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """List recent runs, newest first."""
    from bot.workflows.inspect import list_runs
    from cli.common import load_settings, out, ready_services, run_async
    from jobs.queue import open_runtime

    settings = load_settings()

    async def run() -> None:
        async with ready_services(settings) as services, open_runtime(services.settings) as runtime:
            runs = await list_runs(runtime, status=status or None, workflow=workflow or None, limit=limit)
        if as_json:
            _print_json(runs)
            return
        table = Table("id", "workflow", "status", "created", "wakes", "resumes", "rescues", "about")
        for item in runs:
            about = item.error or item.description
            table.add_row(
                str(item.id),
                item.workflow,
                item.status,
                _when(item.created_at),
                _when(item.wake_at) if item.status in ("sleeping", "waiting", "pending") else "",
                str(item.attempts),
                str(item.rescues),
                (about[:60] + "…") if len(about) > 60 else about,
            )
        out.print(table if runs else "No runs.")

    run_async(run())


@runs_app.command("show")
def show_command(
    run_id: Annotated[int, typer.Argument(help="The run's id (see `bot runs list`).")], as_json: JsonOption = False
) -> None:
    """Show one run: status, input, output, error, and each step with its timing and attempts."""
    from bot.costs.usage import run_usage
    from bot.workflows.inspect import run_detail
    from cli.common import EXIT_REFUSED, err, load_settings, out, ready_services, run_async
    from jobs.queue import open_runtime

    settings = load_settings()

    async def run() -> None:
        async with ready_services(settings) as services, open_runtime(services.settings) as runtime:
            detail = await run_detail(runtime, run_id)
            async with runtime.autocommit.connect() as conn:
                usage = await run_usage(conn, run_id)
        if detail is None:
            err.print(f"[red]No run {run_id}.[/red]")
            raise typer.Exit(EXIT_REFUSED)
        if as_json:
            _print_json({**_plain(detail), "usage": _plain(usage)})
            return
        head = detail.run
        out.print(f"[bold]run {head.id}[/bold] {head.workflow}: [bold]{head.status}[/bold]")
        out.print(f"created {_when(head.created_at)}, updated {_when(head.updated_at)}, resumed {head.attempts}x")
        if head.status in ("sleeping", "waiting", "pending") and head.wake_at:
            out.print(f"wakes at {_when(head.wake_at)}")
        if detail.lease_owner:
            out.print(f"held by {detail.lease_owner} until {_when(detail.lease_until)}")
        if head.rescues:
            out.print(f"rescued from dead workers {head.rescues}x")
        out.print(f"input: {json.dumps(detail.input, ensure_ascii=False)[:500]}")
        if detail.output is not None:
            out.print(f"output: {json.dumps(detail.output, ensure_ascii=False)[:500]}")
        if head.error:
            out.print(f"[red]error:[/red] {head.error}")
        if usage.calls:
            out.print(
                f"model: {usage.calls} call{'s' if usage.calls != 1 else ''}, {usage.prompt_tokens:,} tokens in, "
                f"{usage.completion_tokens:,} out, ${usage.cost_usd:.4f}"
            )
        table = Table("step", "kind", "status", "attempts", "started", "took", "error")
        for step in detail.steps:
            table.add_row(
                step.step_id,
                step.kind,
                step.status,
                str(step.attempts),
                _when(step.started_at),
                _duration(step.started_at, step.finished_at),
                (step.error or "")[:80],
            )
        out.print(table)
        for wait in detail.waits:
            out.print(
                f"wait {wait['step_id']}: {wait['event_name']} matching {json.dumps(wait['match'])} "
                f"-> {wait['state']} (expires {_when(wait['expires_at'])})"
            )

    run_async(run())


@runs_app.command("retry")
def retry_command(run_id: Annotated[int, typer.Argument(help="A failed or cancelled run.")]) -> None:
    """Resume a failed or cancelled run from its last finished step (its failed step runs again)."""
    from bot.workflows.runs import retry_run
    from cli.common import EXIT_REFUSED, err, load_settings, out, ready_services, run_async
    from jobs.queue import open_runtime

    settings = load_settings()

    async def run() -> bool:
        async with ready_services(settings) as services, open_runtime(services.settings) as runtime:
            return await retry_run(runtime, run_id)

    if not run_async(run()):
        err.print(
            f"[red]Run {run_id} is not failed or cancelled, or its steps were pruned (RUN_RETENTION_DAYS), or it "
            "does not exist; nothing to retry.[/red]"
        )
        raise typer.Exit(EXIT_REFUSED)
    out.print(f"Run {run_id} queued again; a worker resumes it from its last finished step.")


@runs_app.command("cancel")
def cancel_command(run_id: Annotated[int, typer.Argument(help="An unfinished run.")]) -> None:
    """Cancel an unfinished run; a worker running it stops at its next step."""
    from bot.workflows.runs import cancel_run
    from cli.common import EXIT_REFUSED, err, load_settings, out, ready_services, run_async
    from jobs.queue import open_runtime

    settings = load_settings()

    async def run() -> bool:
        async with ready_services(settings) as services, open_runtime(services.settings) as runtime:
            return await cancel_run(runtime, run_id, reason="cancelled by an operator")

    if not run_async(run()):
        err.print(f"[red]Run {run_id} is already finished (or does not exist).[/red]")
        raise typer.Exit(EXIT_REFUSED)
    out.print(f"Run {run_id} cancelled.")


@runs_app.command("message")
def message_command(
    message_id: Annotated[int, typer.Argument(help="The message's id (`bot ask` prints it).")],
    as_json: JsonOption = False,
) -> None:
    """Look a user's message up: its thread, status, error, the run answering it and the reply."""
    from bot.stores.messages import describe_message
    from cli.common import EXIT_REFUSED, err, load_settings, out, ready_services, run_async
    from jobs.queue import open_runtime

    settings = load_settings()

    async def run() -> bool:
        async with ready_services(settings) as services, open_runtime(services.settings) as runtime:
            found = await describe_message(runtime, message_id)
        if found is None:
            return False
        if as_json:
            _print_json(found)
            return True
        out.print(f"message {found.message_id} from {found.author_id or '?'}: {found.status}")
        out.print(f"thread: {found.platform} {found.channel_id} {found.thread_key}")
        out.print(f"run: {found.run_id if found.run_id is not None else '(none)'}  (bot runs show RUN for its steps)")
        if found.error:
            out.print(f"error: {found.error}")
        if found.reply:
            out.print(f"reply: {found.reply[:500]}")
        return True

    if not run_async(run()):
        err.print(f"No message {message_id}.")
        raise typer.Exit(EXIT_REFUSED)


def usage_command(as_json: JsonOption = False) -> None:
    """Tokens and cost this month by workspace and user, with today's tokens, against the BUDGET_* settings."""
    from bot.costs.budgets import period_starts
    from bot.costs.usage import spend_by_payer
    from cli.common import load_settings, out, ready_services, run_async
    from jobs.queue import open_runtime

    settings = load_settings()

    async def run() -> None:
        async with ready_services(settings) as services, open_runtime(services.settings) as runtime:
            day, month, _, _ = period_starts(runtime.clock.now())
            rows = await spend_by_payer(runtime, day_start=day, month_start=month)
        if as_json:
            _print_json(rows)
            return
        if not rows:
            out.print("No model calls this month.")
            return
        s = settings
        table = Table("platform", "workspace", "user", "today", "this month", "cost", "budget (day / month)")
        for row in rows:
            daily, monthly = (
                (s.budget_user_daily_tokens, s.budget_user_monthly_tokens)
                if row.user_id
                else (s.budget_workspace_daily_tokens, s.budget_workspace_monthly_tokens)
            )
            budget = " / ".join(f"{b:,}" if b else "-" for b in (daily, monthly))
            who = row.user_id or "(workspace)"
            cost = f"${row.month_cost_usd:.4f}"
            table.add_row(
                row.platform, row.workspace_id, who, f"{row.day_tokens:,}", f"{row.month_tokens:,}", cost, budget
            )
        out.print(table)

    run_async(run())

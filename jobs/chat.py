"""Chat-turn jobs: thin wrappers that load a turn and hand it to `bot.turns`, mapping failures to retries."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import structlog
from arq import Retry
from redis.exceptions import RedisError
from sqlalchemy import func, select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from bot.config import Settings
from bot.errors import ConfigurationError, PermanentUpstreamError, TransientUpstreamError
from bot.intake import enqueue_turn
from bot.models import MESSAGES
from bot.turns import TurnDeps, answer_turn, fail_turn, recorded_attempts

log = structlog.get_logger(__name__)


def backoff_s(attempt: int, settings: Settings, retry_after_s: float | None = None) -> float:
    """Exponential backoff with jitter, never shorter than what the upstream asked for."""
    jitter = random.uniform(0.8, 1.2)  # noqa: S311 (spreads retries of many turns; not security)
    delay = min(settings.retry_max_delay_s, settings.retry_base_delay_s * 2 ** (attempt - 1) * jitter)
    return float(max(delay, retry_after_s or 0.0))


async def process_message(ctx: dict[str, Any], message_id: int) -> str:
    deps: TurnDeps = ctx["deps"]
    settings = deps.runtime.settings
    attempt: int = ctx.get("job_try", 1)
    structlog.contextvars.bind_contextvars(message_id=message_id, attempt=attempt)
    try:
        return "answered" if await answer_turn(deps, message_id) else "skipped"
    except (TransientUpstreamError, OperationalError, InterfaceError, PoolTimeout, RedisError, OSError) as exc:
        # The job's own try counter restarts when the sweep re-queues a turn; Postgres counts every attempt.
        attempt = max(attempt, await recorded_attempts(deps, message_id))
        if attempt < settings.llm_max_attempts:
            retry_after = exc.retry_after_s if isinstance(exc, TransientUpstreamError) else None
            delay = backoff_s(attempt, settings, retry_after)
            log.warning("turn failed transiently; retrying", error=str(exc), retry_in_s=round(delay, 2))
            raise Retry(defer=delay) from exc
        what = exc.service if isinstance(exc, TransientUpstreamError) else "a service I depend on"
        await fail_turn(
            deps,
            message_id,
            f"I couldn't answer: {_service_name(what)} kept failing ({attempt} attempts). Please try again later.",
            f"gave up after {attempt} attempts: {exc}",
        )
        return "failed"
    except PermanentUpstreamError as exc:
        await fail_turn(deps, message_id, f"I couldn't answer: {exc.user_message}", str(exc))
        return "failed"
    except ConfigurationError as exc:
        await fail_turn(deps, message_id, "I'm not set up to answer here yet; the operator has been told.", str(exc))
        return "failed"
    except Exception as exc:  # a bug: tell the user plainly, keep the traceback for the operator
        log.exception("turn crashed")
        await fail_turn(
            deps,
            message_id,
            "Something went wrong on my side while answering. The operators have the details in the logs.",
            f"{type(exc).__name__}: {exc}",
        )
        return "failed"
    finally:
        structlog.contextvars.unbind_contextvars("message_id", "attempt")


def _service_name(service: str) -> str:
    return {"llm": "the language model"}.get(service, service)


async def requeue_stale_turns(ctx: dict[str, Any]) -> int:
    """Re-enqueue turns left `pending` or `processing` too long (a lost Redis job, a killed worker).

    arq ignores a job id it still holds, so a turn whose job is alive is not doubled.
    """
    deps: TurnDeps = ctx["deps"]
    cutoff = func.now() - timedelta(seconds=deps.runtime.settings.stale_pending_after_s)  # the database's clock
    m = MESSAGES.c
    async with deps.runtime.autocommit.connect() as conn:
        rows = (
            await conn.execute(
                select(m.id, m.job_id)
                .where(m.status.in_(("pending", "processing")), m.role == "user", m.updated_at < cutoff)
                .order_by(m.updated_at)  # oldest first, so a backlog cannot starve anyone
                .limit(1000)
            )
        ).all()
    requeued = 0
    for message_id, job_id in rows:
        if job_id and await enqueue_turn(deps.runtime, message_id, job_id):
            requeued += 1
    if requeued:
        log.warning("requeued stale turns", count=requeued)
    return requeued

"""Counters and histograms a process keeps in memory (prometheus-client's default registry), for what Postgres
does not record: how long steps and model calls took, platforms' 429s. Served with the figures read from Postgres
at scrape time (turns, queue, tokens, media bytes) on `/metrics` (see `webconsole.metrics`)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

STEP_SECONDS = Histogram(
    "threadbot_step_duration_seconds", "Time a workflow step's function ran, by outcome.", ["outcome"], buckets=_SECONDS
)
LLM_SECONDS = Histogram(
    "threadbot_llm_request_duration_seconds", "Time from a model request to the end of its answer.", ["model"],
    buckets=_SECONDS,
)  # fmt: skip
LLM_FIRST_TOKEN_SECONDS = Histogram(
    "threadbot_llm_first_token_seconds", "Time from a model request to its first text.", ["model"], buckets=_SECONDS
)
RATE_LIMITED = Counter(
    "threadbot_platform_rate_limited_total", "429 answers (rate limits) from a platform's API.", ["platform"]
)

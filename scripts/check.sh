#!/usr/bin/env bash
# The project's one test command: lint, types, then the whole test suite (real Postgres, Redis and HTTP servers,
# all started by the tests themselves). Usage: scripts/check.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v uv >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check uv
fi
uv sync --frozen --quiet

echo "== ruff"
uv run ruff check .
uv run ruff format --check .
echo "== mypy (strict on bot, adapters, jobs, sandbox, bench, cli; tests with untyped defs allowed, bodies checked)"
uv run mypy
echo "== pytest"
uv run pytest "$@"

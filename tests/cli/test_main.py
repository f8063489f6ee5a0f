"""The command tree itself: `--version`, and a `--help` that does not load the database, queue and migration
libraries (it took about 3 s of imports when it did)."""

from __future__ import annotations

import subprocess
import sys


def test_version_is_printed() -> None:
    shown = subprocess.run([sys.executable, "-m", "cli", "--version"], capture_output=True, text=True, check=True)
    assert shown.stdout.startswith("threadbot 0.")


def test_help_loads_no_database_queue_or_migration_library() -> None:
    probe = (
        "import sys\n"
        "from cli.main import app\n"
        "try:\n"
        "    app(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('sqlalchemy', 'alembic', 'arq', 'asyncpg', 'redis', 'openai', 'slack_bolt', 'discord')"
        " if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert "HEAVY []" in shown.stdout, shown.stdout[-300:]

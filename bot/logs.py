"""Logging setup: structlog to stderr, console lines by default and JSON lines for production."""

from __future__ import annotations

import logging
import os
import sys

import structlog

# True while text written with `write_stdout` ends mid-line: a reply streaming in at the console.
_line_open = False


def write_stdout(text: str) -> None:
    """Print `text` (a reply as it streams) so that a log line arriving before its end starts on a line of its
    own, where stdout and stderr are one terminal or file, instead of being glued onto the reply."""
    global _line_open
    sys.stdout.write(text)
    sys.stdout.flush()
    if text:
        _line_open = not text.endswith("\n")


def _shares_stdout() -> bool:
    try:
        return os.path.samestat(os.fstat(sys.stdout.fileno()), os.fstat(sys.stderr.fileno()))
    except (OSError, ValueError, AttributeError):  # a stream without a file (a test's capture)
        return False


class _CurrentStderr:
    """Writes to whatever sys.stderr is at the time: a logger set up once keeps working when stderr is swapped
    (test runners, daemonisation) instead of writing to a closed file."""

    def write(self, text: str) -> int:
        global _line_open
        if _line_open and _shares_stdout():
            sys.stderr.write("\n")
        _line_open = False
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


# Libraries whose INFO lines are chatter for an operator (arq: every job; alembic: "Context impl" on every
# command; APScheduler: each start and stop): shown from DEBUG on, their warnings always.
_QUIET = ("arq", "httpx", "httpx2", "pgserver", "alembic", "apscheduler")


def configure_logging(level: str = "INFO", *, json: bool = False) -> None:
    """Our lines and the libraries' (standard logging: alembic, APScheduler, arq, aiohttp) in one format: with
    `json`, every line on stderr is one JSON object."""
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso"),
    ]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    # The JSON renderer needs a traceback as text; the console one formats it itself.
    ending: list[structlog.typing.Processor] = [structlog.processors.format_exc_info, renderer] if json else [renderer]
    handler = logging.StreamHandler(_CurrentStderr())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *ending],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(numeric)
    for noisy in _QUIET:
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )

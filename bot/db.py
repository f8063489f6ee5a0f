"""Database engine, sessions and migrations (Alembic, run in-process under an advisory lock)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from bot.config import Settings
from bot.errors import ConfigurationError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any constant works; it only has to be the same in every process that may migrate at once.
_MIGRATION_LOCK_ID = 0x7468726561


def async_url(url: str) -> str:
    """Accept the usual `postgresql://` / `postgres://` spellings and pick the asyncpg driver."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://", "postgresql+psycopg://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ConfigurationError(f"DATABASE_URL must be a postgresql:// URL, got {url.split(':', 1)[0]}://...")


# Besides the main pool, a process may hold: the scheduler leader's (bot.followups.scheduler), the Slack OAuth
# installation store's (jobs.platforms) and one for the start-up schema check.
SCHEDULER_CONNECTIONS = 4
INSTALLATION_STORE_POOL = 2
STARTUP_CONNECTIONS = 1


def peak_connections(settings: Settings) -> int:
    """The most Postgres connections one bot process (a worker or an adapter) opens at once, from its settings:
    the deployment's processes times this must stay under Postgres's max_connections."""
    peak = 2 * settings.database_pool_size + SCHEDULER_CONNECTIONS + STARTUP_CONNECTIONS
    if settings.slack_oauth_enabled:
        peak += 2 * INSTALLATION_STORE_POOL
    return peak


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    # No pre-ping: it costs a round trip on every checkout. A connection that died is an OperationalError or
    # InterfaceError, which the turn's job retries like any transient failure; recycling bounds their age.
    # hide_parameters: error messages are logged and stored on the row; they must not carry users' text.
    return create_async_engine(
        async_url(url), pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800, hide_parameters=True
    )


def autocommit(engine: AsyncEngine) -> AsyncEngine:
    """The same pool, without BEGIN/COMMIT round trips: for single statements, which are atomic on their own."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def _head_revision() -> str | None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(config).get_current_head()


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def upgrade(engine: AsyncEngine, revision: str = "head") -> str | None:
    """Bring the schema to `revision`; safe when several processes start at once. Returns the new revision."""

    def run(connection: Connection) -> str | None:
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
        command.upgrade(_alembic_config(connection), revision)
        return _current_revision(connection)

    async with engine.begin() as conn:
        return await conn.run_sync(run)


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current_revision)


async def require_current_schema(engine: AsyncEngine) -> None:
    """Refuse to run against a database whose schema is behind the code, with the fix in the message."""
    current, head = await current_revision(engine), _head_revision()
    if current != head:
        raise ConfigurationError(
            f"The database schema is at {current or 'nothing'}, the code needs {head}. Run `bot db upgrade`."
        )

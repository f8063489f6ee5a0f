"""What intake writes and looks up: a user's message with its workspace, thread and the run answering it, in one
statement, and a delivery already held, found by its dedupe key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, Select, String, Text, bindparam, func, literal, select, true
from sqlalchemy.dialects.postgresql import JSONB, insert

from bot.models import MESSAGES, THREADS, WORKSPACES
from bot.runtime import Runtime
from bot.workflows.models import RUNS


@dataclass(frozen=True, slots=True)
class StoredMessage:
    message_id: int
    thread_id: int
    run_id: int
    run_status: str
    wake_seq: int


_FIND = (
    select(
        MESSAGES.c.id.label("message_id"),
        MESSAGES.c.thread_id,
        RUNS.c.id.label("run_id"),
        RUNS.c.status.label("run_status"),
        RUNS.c.wake_seq,
    )
    .join(RUNS, RUNS.c.id == MESSAGES.c.run_id)
    .where(MESSAGES.c.dedupe_key == bindparam("key"))
)


async def find_by_dedupe_key(runtime: Runtime, key: str) -> StoredMessage | None:
    async with runtime.autocommit.connect() as conn:
        row = (await conn.execute(_FIND, {"key": key})).mappings().first()
    return StoredMessage(**row) if row is not None else None


def _persist_statement() -> Select[Any]:
    """Workspace, thread, message and the run answering it in one statement: atomic, and one round trip on the
    intake path. The run's id is drawn first so the message can carry it. Built once, run with parameters
    (named b_*: SQLAlchemy reserves the names of the columns a statement sets)."""
    w, t = WORKSPACES.c, THREADS.c
    platform, workspace_id = bindparam("b_platform", type_=String), bindparam("b_workspace", type_=String)
    new_workspace = (
        insert(WORKSPACES)
        .values(platform=platform, external_id=workspace_id, name="")
        .on_conflict_do_nothing(constraint="uq_workspaces_platform_external")
        .returning(w.id)
        .cte("new_workspace")
    )
    workspace = (
        select(new_workspace.c.id)
        .union_all(select(w.id).where(w.platform == platform, w.external_id == workspace_id))
        .cte("workspace")
    )
    location = (platform, workspace.c.id, bindparam("b_channel", type_=String), bindparam("b_thread", type_=String))
    thread = (
        insert(THREADS)
        .from_select(["platform", "workspace_id", "channel_id", "thread_key"], select(*location).limit(1))
        .on_conflict_do_update(constraint="uq_threads_location", set_={"updated_at": func.now()})
        .returning(t.id)
        .cte("thread")
    )
    run_id = select(func.nextval("workflow_runs_id_seq").label("id")).cte("run_id")
    user = bindparam("b_user", type_=String)
    values = {
        "role": literal("user"),
        "author_id": user,
        "text": bindparam("b_text", type_=Text),
        "token_count": bindparam("b_tokens", type_=Integer),
        "status": literal("pending"),
        "dedupe_key": bindparam("b_key", type_=String),
        "platform_message_id": bindparam("b_platform_message_id", type_=String),
        "attempts": literal(0),
        "files": bindparam("b_files", type_=JSONB(none_as_null=True)),
    }
    message = (
        insert(MESSAGES)
        .from_select(
            ["thread_id", "run_id", *values],
            # Both sides are one row; the explicit join says the product is intended.
            select(thread.c.id, run_id.c.id, *values.values()).select_from(thread.join(run_id, true())),
        )
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(MESSAGES.c.id, MESSAGES.c.thread_id, MESSAGES.c.run_id)
        .cte("message")
    )
    run = (
        insert(RUNS)
        .from_select(
            ["id", "workflow", "input", "status", "thread_id", "user_id", "wake_seq", "wake_at", "attempts", "rescues"],
            select(
                message.c.run_id,
                bindparam("b_workflow", type_=String),
                # The platform lets a turn pick its thread's strategy without a statement (bot.thread_turns).
                func.jsonb_build_object("message_id", message.c.id, "platform", platform),
                literal("pending"),
                message.c.thread_id,
                user,
                literal(0),
                func.now(),
                literal(0),
                literal(0),
            ),
        )
        .returning(RUNS.c.id)
        .cte("run")
    )
    return select(message.c.id.label("message_id"), message.c.thread_id, run.c.id.label("run_id")).join(
        run, run.c.id == message.c.run_id
    )


_PERSIST = _persist_statement()


@dataclass(frozen=True, slots=True)
class NewMessage:
    platform: str
    workspace_id: str
    channel_id: str
    thread_key: str
    user_id: str
    text: str
    token_count: int
    dedupe_key: str
    platform_message_id: str | None
    files: list[dict[str, Any]] | None
    workflow: str


@dataclass(frozen=True, slots=True)
class Persisted:
    message_id: int
    thread_id: int
    run_id: int
    # The message already stored under this dedupe key, when this delivery is a duplicate of it.
    held: StoredMessage | None = None

    @property
    def duplicate(self) -> bool:
        return self.held is not None


async def persist_message(runtime: Runtime, new: NewMessage) -> Persisted:
    """Store the message pending with its run; `duplicate` (and `held`) when a delivery of it was stored before."""
    params = {f"b_{name}": value for name, value in _params(new).items()}
    # Two tries: a workspace created by a concurrent first message is invisible to this statement's snapshot,
    # which then inserts nothing; the second try sees it.
    for _ in range(2):
        async with runtime.autocommit.connect() as conn:
            row = (await conn.execute(_PERSIST, params)).mappings().first()
        if row is not None:
            return Persisted(**row)
        existing = await find_by_dedupe_key(runtime, new.dedupe_key)
        if existing is not None:
            return Persisted(existing.message_id, existing.thread_id, existing.run_id, held=existing)
    raise RuntimeError(f"could not store message {new.dedupe_key}")


def _params(new: NewMessage) -> dict[str, Any]:
    return {
        "platform": new.platform,
        "workspace": new.workspace_id,
        "channel": new.channel_id,
        "thread": new.thread_key,
        "user": new.user_id,
        "text": new.text,
        "tokens": new.token_count,
        "key": new.dedupe_key,
        "platform_message_id": new.platform_message_id,
        "files": new.files,
        "workflow": new.workflow,
    }

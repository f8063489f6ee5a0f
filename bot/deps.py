"""What a worker's jobs share: the runtime (database, Redis, settings), the LLM and the platforms' clients."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bot.errors import ConfigurationError
from bot.events import ThreadRef
from bot.ports import LLM, BlobStore, ChatPlatform, FileSource, Mailer, Transcriber
from bot.runtime import Runtime
from bot.workflows.leases import LeaseKeeper


@dataclass
class WorkerDeps:
    runtime: Runtime
    llm: LLM
    platforms: Mapping[str, ChatPlatform]
    files: Mapping[str, FileSource] = field(default_factory=dict)
    # Media: where files are kept and who transcribes them (None in a worker built without media, e.g. a bench).
    blobs: BlobStore | None = None
    transcriber: Transcriber | None = None
    # Email delivery of chain results (SMTP, Resend, or the local sink on the embedded default).
    mailer: Mailer | None = None
    # Identifies this worker process in run leases (host:pid:random), for operators reading `bot runs show`.
    worker_id: str = "worker"
    # Renews the leases of every run this worker advances, in one statement per beat.
    leases: LeaseKeeper = field(init=False)

    def __post_init__(self) -> None:
        self.leases = LeaseKeeper(self.runtime)

    def platform_for(self, thread: ThreadRef) -> ChatPlatform:
        platform = self.platforms.get(thread.platform)
        if platform is None:
            raise ConfigurationError(f"no outbound client for platform {thread.platform!r} in this worker")
        return platform

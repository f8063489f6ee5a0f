"""Typed settings, read once at an entry point and passed down (never `os.environ` deep inside)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

CommaList = Annotated[frozenset[str], NoDecode]


def data_home() -> Path:
    """Where a relative DATA_DIR is anchored: the checkout the bot runs from (the folder of its pyproject.toml),
    or, for an installed package, the user's data folder. Never the working folder: `bot` run from elsewhere would
    silently start a second, empty database."""
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file():
        return checkout
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "threadbot"


class Settings(BaseSettings):
    """Every setting has a default that works on the embedded default; README.md lists them all."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # Where things live. Empty URLs mean "start the embedded service under DATA_DIR".
    data_dir: Path = Field(
        default=Path(".threadbot"),
        description="Folder for embedded Postgres, Redis and media; a relative one is in the bot's checkout (or, "
        "installed, the user's data folder), whatever folder a command runs from.",
    )
    database_url: str = Field(default="", description="Postgres URL (postgresql://...). Empty: embedded Postgres.")
    redis_url: str = Field(default="", description="Redis URL (redis://...). Empty: embedded Redis.")
    database_pool_size: int = Field(default=10, description="Postgres connections per process (twice this at peak).")

    # LLM
    llm_provider: Literal["openai", "azure"] = Field(
        default="openai",
        description="openai: OpenAI or any OpenAI-compatible server (OPENAI_*); azure: Azure OpenAI (AZURE_OPENAI_*).",
    )
    openai_api_key: SecretStr = Field(default=SecretStr(""), description="Empty: the local stand-in model answers.")
    openai_base_url: str = Field(default="", description="OpenAI-compatible endpoint (Ollama, vLLM, a proxy).")
    openai_model: str = Field(
        default="gpt-4o", description="Chat model name (on Azure: the deployed model, for token counts)."
    )
    azure_openai_endpoint: str = Field(
        default="", description="Azure OpenAI resource URL (https://NAME.openai.azure.com), with LLM_PROVIDER=azure."
    )
    azure_openai_api_key: SecretStr = Field(default=SecretStr(""), description="Azure OpenAI key (the api-key header).")
    azure_openai_api_version: str = Field(default="2024-10-21", description="Azure OpenAI api-version.")
    azure_openai_chat_deployment: str = Field(
        default="", description="Azure deployment that answers chat. Empty: a deployment named OPENAI_MODEL."
    )
    azure_openai_embedding_deployment: str = Field(
        default="", description="Azure deployment for embeddings. Empty: a deployment named EMBEDDING_MODEL."
    )
    openai_timeout_s: float = Field(default=60.0, description="Seconds before an LLM call counts as timed out.")
    max_reply_tokens: int = Field(default=1024, description="Upper bound on tokens in one reply.")
    context_token_budget: int = Field(default=6000, description="Tokens of thread history sent with each prompt.")
    context_max_messages: int = Field(default=200, description="Most messages read from a thread per prompt.")
    system_prompt: str = Field(
        default=(
            "You are a helpful assistant in a team chat. Answer concisely and use Markdown sparingly. "
            "You are talking in a thread; earlier messages of the thread are given for context."
        ),
        description="System prompt at the top of every conversation.",
    )

    # Cost controls. Budgets count every model call's tokens (prompt and answer, tool rounds included), by UTC day
    # and calendar month; a request over one is refused with the time it resets.
    budget_user_daily_tokens: int = Field(default=0, description="Tokens one user may spend per UTC day (0: no limit).")
    budget_user_monthly_tokens: int = Field(
        default=0, description="Tokens one user may spend per calendar month, UTC (0: no limit)."
    )
    budget_workspace_daily_tokens: int = Field(
        default=0, description="Tokens one workspace (or server) may spend per UTC day (0: no limit)."
    )
    budget_workspace_monthly_tokens: int = Field(
        default=0, description="Tokens one workspace (or server) may spend per calendar month, UTC (0: no limit)."
    )
    model_prices: dict[str, tuple[float, float]] = Field(
        default={},
        description='USD per million tokens, in and out, as JSON: {"my-model": [0.5, 1.5]}; added to the shipped '
        "prices of OpenAI's models (a name matches by its longest known prefix).",
    )
    moderation: Literal["off", "input", "output", "both"] = Field(
        default="off",
        description="Check users' messages (input), the bot's answers (output) or both with the moderation "
        "endpoint; flagged input is refused, a flagged answer is withdrawn.",
    )
    moderation_base_url: str = Field(
        default="", description="OpenAI-compatible moderation endpoint. Empty: OPENAI_BASE_URL's (or the stand-in)."
    )
    moderation_model: str = Field(default="omni-moderation-latest", description="Moderation model name.")
    redact_pii: bool = Field(
        default=False,
        description="Replace e-mail addresses, phone, card, IBAN and social security numbers and IP addresses "
        "with placeholders before any text leaves for the model or the moderation endpoint.",
    )

    llm_vision: bool = Field(
        default=True,
        description="The model reads images: a picture shared with a question is sent to it (off: pictures are "
        "refused, saying why).",
    )
    max_image_bytes: int = Field(
        default=20_000_000, description="Largest picture sent to the model, in bytes (OpenAI takes up to 20 MB)."
    )

    assistant_followups: bool = Field(
        default=True, description="Let the model schedule follow-ups in a thread itself (a tool it may call)."
    )

    # Several messages in one thread close together (a thought in three lines, a correction mid-answer)
    conversation_strategy: Literal["burst", "queue", "interrupt", "concurrent"] = Field(
        default="burst",
        description="burst: a burst of messages gets one answer, and messages sent during an answer get one "
        "answer after it; queue: each answered in turn, oldest first; interrupt: a new message stops the answer "
        "being written and is answered with everything before it; concurrent: each answered at once, on its own.",
    )
    conversation_strategies: dict[str, Literal["burst", "queue", "interrupt", "concurrent"]] = Field(
        # The console waits for each answer before the next line, so a burst window would only add to each turn.
        default={"console": "queue"},
        description='Per platform, as JSON, over CONVERSATION_STRATEGY: {"console": "queue", "discord": "burst"}.',
    )
    burst_window_s: float = Field(
        default=0.8,
        description="burst: seconds a thread must be quiet after its newest message before the answer starts.",
    )
    turn_wait_max_s: float = Field(
        default=300.0,
        description="Longest a message waits for the turn before it in its thread; then it is answered anyway.",
    )

    # Intake limits and access
    max_message_chars: int = Field(default=8000, description="Longest message accepted, in characters.")
    rate_limit_per_minute: int = Field(default=20, description="Messages one user may send per minute (0: no limit).")
    max_file_bytes: int = Field(
        default=500_000_000, description="Largest file accepted from a platform, in bytes; larger ones are refused."
    )
    allowed_workspaces: CommaList = Field(default=frozenset(), description="Comma-separated; empty allows all.")
    allowed_channels: CommaList = Field(default=frozenset(), description="Comma-separated; empty allows all.")
    allowed_users: CommaList = Field(default=frozenset(), description="Comma-separated; empty allows all.")
    allowed_roles: CommaList = Field(
        default=frozenset(), description="Discord role ids or names, comma-separated; empty allows every role."
    )

    # Worker
    worker_max_jobs: int = Field(default=500, description="Jobs one worker runs at once (LLM work is I/O-bound).")
    worker_poll_delay_s: float = Field(
        default=0.1, description="Longest idle wait between queue reads; new turns wake a worker at once."
    )
    llm_max_attempts: int = Field(default=5, description="Attempts at a transient LLM failure before giving up.")
    retry_base_delay_s: float = Field(default=1.0, description="First retry delay; doubles each attempt.")
    retry_max_delay_s: float = Field(default=60.0, description="Longest delay between retries.")
    stale_pending_after_s: float = Field(
        default=30.0, description="A run overdue by this long (its wake-up job was lost) is re-queued by the sweeper."
    )
    workflow_lease_s: float = Field(
        default=6.0,
        description="How long a worker owns a run without renewing (it renews every third of this); a dead "
        "worker's runs move on to another within about 1.3 times this.",
    )
    workflow_sweep_interval_s: float = Field(
        default=10.0, description="Seconds between sweeps for overdue wake-ups and runs whose worker died."
    )
    max_scheduled_per_user: int = Field(
        default=50, description="Active reminders, follow-ups and schedules one user may have per workspace (0: any)."
    )
    min_repeat_interval_s: float = Field(
        default=300.0, description="Shortest repeat a user may schedule with /remind every …, in seconds."
    )
    scheduler_sync_interval_s: float = Field(
        default=5.0, description="Seconds between the scheduler leader's reads of new and cancelled schedules."
    )
    run_retention_days: float = Field(
        default=30.0,
        description="Days a finished run keeps its step results, waits and outbox rows (0: for ever); "
        "the run itself stays listed but can no longer be retried.",
    )
    workflow_max_rescues: int = Field(
        default=3, description="Times a run is rescued from dead workers before it is failed (with a message)."
    )

    # The web console (`bot up`, `bot serve web`) and the health endpoints of long-running processes
    web_host: str = Field(
        default="127.0.0.1",
        description="Address the web console listens on; 127.0.0.1 keeps it to this machine (also the worker's "
        "health port).",
    )
    web_port: int = Field(default=8288, description="Port of the web console (0: any free port).")
    web_admin_token: SecretStr = Field(
        default=SecretStr(""),
        description="Login token of the web console. Empty: one is made on the first start, kept in "
        "DATA_DIR/web_admin_token and printed in the console's URL by `bot up` and `bot serve web`.",
    )
    worker_health_port: int = Field(
        default=0,
        description="Port where `bot worker` and `bot serve slack` or `discord` answer /healthz, /readyz and "
        "/metrics (0: none; `bot up` and `bot serve web` answer them on the web console's port).",
    )

    # Platforms and services (later adapters read these; every endpoint has a base URL)
    slack_bot_token: SecretStr = Field(default=SecretStr(""), description="Slack bot token (xoxb-...).")
    slack_app_token: SecretStr = Field(default=SecretStr(""), description="Slack app-level token for Socket Mode.")
    slack_signing_secret: SecretStr = Field(default=SecretStr(""), description="Verifies Slack HTTP requests.")
    slack_api_url: str = Field(default="https://slack.com/api/", description="Slack Web API base URL.")
    slack_client_id: str = Field(
        default="", description="Slack app client id; with the secret, enables multi-workspace OAuth install."
    )
    slack_client_secret: SecretStr = Field(
        default=SecretStr(""), description="Slack app client secret (OAuth install; HTTP mode only)."
    )
    slack_allow_bot_messages: bool = Field(
        default=False, description="Answer other bots' messages too (the bot's own are always ignored)."
    )
    slack_native_streaming: bool = Field(
        default=True,
        description="Stream replies with Slack's chat streaming API where it can (DMs, assistant pane); "
        "off: post + chat.update everywhere.",
    )
    slack_greeting: str = Field(
        default="Hi! Ask me anything; I answer right here in the thread.",
        description="What the bot says when someone opens its assistant pane.",
    )
    discord_token: SecretStr = Field(default=SecretStr(""), description="Discord bot token.")
    discord_api_base: str = Field(default="https://discord.com/api/v10", description="Discord REST base URL.")
    discord_gateway_url: str = Field(default="wss://gateway.discord.gg", description="Discord gateway URL.")
    discord_command_guild: str = Field(
        default="", description="Guild id for `bot discord sync-commands` (instant); empty: global commands."
    )
    deepgram_api_key: SecretStr = Field(default=SecretStr(""), description="Deepgram key for transcription.")
    deepgram_base_url: str = Field(default="https://api.deepgram.com", description="Deepgram (or self-hosted) URL.")
    s3_endpoint_url: str = Field(default="", description="S3-compatible endpoint (MinIO, R2). Empty: AWS's own.")
    s3_bucket: str = Field(default="", description="Bucket for media. Empty: media go under DATA_DIR/media.")
    s3_region: str = Field(default="us-east-1", description="Region of the media bucket.")
    s3_access_key_id: str = Field(default="", description="S3 access key id. Empty: boto3's usual credential chain.")
    s3_secret_access_key: SecretStr = Field(default=SecretStr(""), description="S3 secret key (with the id above).")
    transcribe_via_url: bool | None = Field(
        default=None,
        description="Let Deepgram fetch media from a presigned S3 URL (true) or stream the bytes to it (false). "
        "Empty: URL when the bucket is on AWS itself (no S3_ENDPOINT_URL), else stream.",
    )
    media_url_expires_s: int = Field(default=3600, description="Lifetime of a presigned media URL, in seconds.")
    media_progress_interval_s: float = Field(
        default=5.0, description="Least seconds between edits of a media job's progress message."
    )

    offline_transcriber: bool = Field(
        default=True,
        description="With no DEEPGRAM_API_KEY, transcribe on this machine with pocketsphinx (English, WAV; other "
        "formats with ffmpeg on PATH); false: a stand-in that only describes the audio.",
    )

    # Email delivery of chain results (a chain's `deliver: email`)
    email_from: str = Field(
        default="threadbot <threadbot@localhost>", description="Sender of delivered emails (From: header)."
    )
    email_allowed_domains: CommaList = Field(
        default=frozenset(),
        description="Domains emails may be delivered to, comma-separated (example.com also allows its "
        "subdomains); empty allows any.",
    )
    email_max_recipients: int = Field(default=10, description="Most recipients of one chain result's email.")
    email_timeout_s: float = Field(
        default=30.0, description="Seconds before an SMTP or Resend call counts as timed out."
    )
    smtp_host: str = Field(
        default="",
        description="SMTP server for email delivery. Empty (and no RESEND_API_KEY): a local sink keeps every mail "
        "under DATA_DIR/mail (`bot mail list`).",
    )
    smtp_port: int = Field(default=587, description="SMTP port (587 for STARTTLS, 465 for TLS, 25 plain).")
    smtp_security: Literal["starttls", "tls", "none"] = Field(
        default="starttls", description="starttls (upgrade after connecting), tls (TLS from the start) or none."
    )
    smtp_username: str = Field(default="", description="SMTP user name; empty: no authentication.")
    smtp_password: SecretStr = Field(default=SecretStr(""), description="SMTP password (with the user name).")
    resend_api_key: SecretStr = Field(
        default=SecretStr(""), description="Resend API key: when set, email goes through Resend's HTTP API."
    )
    resend_base_url: str = Field(default="https://api.resend.com", description="Resend API (or proxy) URL.")

    # Chains and retrieval
    chains_dir: Path | None = Field(
        default=None,
        description="Folder of your own chain YAML files, loaded beside the shipped ones (same name: yours wins).",
    )
    chain_input_max_chars: int = Field(
        default=48_000, description="Longest transcript or thread text put into one chain prompt (cut, with a note)."
    )
    chain_json_attempts: int = Field(
        default=3, description="Attempts at a JSON chain step whose output does not match its schema."
    )
    reaction_chains: dict[str, str] = Field(
        default={"memo": "thread-summary"},
        description='Emoji reactions that run a chain on the reacted message\'s thread, as JSON: {"memo": '
        '"thread-summary"} (names without colons; {} turns them off).',
    )
    summarize_chain: str = Field(
        default="thread-summary", description="The chain the Summarize thread shortcut (or context menu) runs."
    )
    embedding_model: str = Field(default="text-embedding-3-small", description="Embeddings model for retrieval.")
    embedding_dimensions: int = Field(
        default=1536,
        ge=1,
        le=16000,
        description="Length of EMBEDDING_MODEL's vectors (text-embedding-3-* are asked for it; other models must "
        "return it). Changing it on a database with stored chunks: `bot index reembed`.",
    )
    retrieval_chunks: int = Field(
        default=4, description="Transcript chunks retrieved into a chat turn's prompt (0: retrieval off)."
    )

    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR.")
    log_json: bool = Field(default=False, description="JSON log lines (for production) instead of console lines.")

    @field_validator("data_dir", mode="after")
    @classmethod
    def _anchor_data_dir(cls, value: Path) -> Path:
        return value if value.is_absolute() else data_home() / value

    @field_validator(
        "allowed_workspaces",
        "allowed_channels",
        "allowed_users",
        "allowed_roles",
        "email_allowed_domains",
        mode="before",
    )
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(part.strip() for part in value.split(",") if part.strip())
        return value

    @property
    def slack_oauth_enabled(self) -> bool:
        """Multi-workspace install: bot tokens come from each workspace's OAuth installation, not SLACK_BOT_TOKEN."""
        return bool(self.slack_client_id and self.slack_client_secret.get_secret_value())

    def strategy_for(self, platform: str) -> str:
        return self.conversation_strategies.get(platform, self.conversation_strategy)

    @property
    def uses_stand_in_llm(self) -> bool:
        if self.llm_provider == "azure":
            return False
        return not self.openai_api_key.get_secret_value() and not self.openai_base_url

"""The usage table: one row per model call, with the tokens the endpoint reported and the price at the time."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, Float, Index, Table
from sqlmodel import Field, SQLModel

from bot.models import _timestamp


class TokenUsage(SQLModel, table=True):
    """Who spent what on which model, for which run. The payer is the platform's own ids (not our thread or
    workspace rows), so a budget is one indexed range read, and the row outlives the run's retention."""

    __tablename__ = "token_usage"
    __table_args__ = (
        # The budget check: a workspace's (and within it a user's) calls since the start of the month.
        Index("ix_token_usage_payer", "platform", "workspace_id", "created_at"),
        Index("ix_token_usage_run", "run_id"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    run_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    platform: str = Field(max_length=32)
    workspace_id: str = Field(max_length=128)
    user_id: str = Field(max_length=128)
    model: str = Field(max_length=128)
    purpose: str = Field(max_length=32)  # reply, chain, summary: what the call was for
    prompt_tokens: int
    completion_tokens: int
    # False when the endpoint sent no usage and the counts were estimated from the text.
    reported: bool = True
    # Priced when recorded, from MODEL_PRICES then: a later change of price does not rewrite the past.
    cost_usd: float = Field(default=0.0, sa_column=Column(Float, nullable=False, server_default="0"))
    created_at: datetime = _timestamp()


TOKEN_USAGE: Table = TokenUsage.__table__  # type: ignore[attr-defined]

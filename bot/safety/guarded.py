"""The LLM as the core sees it when REDACT_PII or MODERATION is on: the same port, with the checks around it."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from typing import Any, Protocol

from bot.config import Settings
from bot.errors import UserFacingError
from bot.ports import LLM, ChatMessage, Tool, ToolCall, Usage
from bot.safety.moderation import Verdict
from bot.safety.redaction import redact


class Moderator(Protocol):
    async def check(self, texts: Sequence[str]) -> Verdict: ...


class Flagged(UserFacingError):
    """The moderation check flagged a user's message (nothing was sent to the model) or an answer (withdrawn)."""


class GuardedLLM:
    """Redacts what leaves, checks the user's latest message before the model sees it and the whole answer once
    it is written. An answer streams as it is written, so a flagged one has been shown in part: raising here
    fails the step, and the failure notice takes the partial answer's place (bot.failures)."""

    def __init__(
        self, inner: LLM, *, redact_pii: bool, moderator: Moderator | None, check_input: bool, check_output: bool
    ) -> None:
        self._inner = inner
        self._redact = redact_pii
        self._moderator = moderator
        self._check_input = check_input and moderator is not None
        self._check_output = check_output and moderator is not None

    @classmethod
    def wrap(cls, inner: LLM, settings: Settings, moderator: Moderator | None) -> LLM:
        """`inner` itself when neither check is on (nothing added to the reply path)."""
        if not settings.redact_pii and (moderator is None or settings.moderation == "off"):
            return inner
        return cls(
            inner,
            redact_pii=settings.redact_pii,
            moderator=moderator,
            check_input=settings.moderation in ("input", "both"),
            check_output=settings.moderation in ("output", "both"),
        )

    def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        tools: Sequence[Tool] = (),
        tool_calls: list[ToolCall] | None = None,
        model: str | None = None,
        json_schema: dict[str, Any] | None = None,
        usage: Usage | None = None,
        images: Sequence[str] = (),
    ) -> AsyncGenerator[str, None]:
        return self._stream(
            messages,
            max_tokens=max_tokens,
            tools=tools,
            tool_calls=tool_calls,
            model=model,
            json_schema=json_schema,
            usage=usage,
            images=images,
        )

    async def _stream(self, messages: Sequence[ChatMessage], **options: Any) -> AsyncGenerator[str, None]:
        if self._redact:
            messages = [ChatMessage(m.role, redact(m.content)) for m in messages]
        if self._check_input:
            latest = next((m.content for m in reversed(messages) if m.role == "user"), "")
            verdict = await self._verdict([latest])
            if verdict.flagged:
                raise Flagged(
                    f"your message was flagged by the moderation check ({verdict.said()}), so I did not send it "
                    "to the model."
                )
        written: list[str] = []
        async with aclosing(self._inner.stream_chat(messages, **options)) as deltas:
            async for delta in deltas:
                written.append(delta)
                yield delta
        if self._check_output:
            verdict = await self._verdict(["".join(written)])
            if verdict.flagged:
                raise Flagged(f"my answer was flagged by the moderation check ({verdict.said()}), so I withdrew it.")

    async def _verdict(self, texts: list[str]) -> Verdict:
        assert self._moderator is not None  # only called when a check is on, which needs one
        return await self._moderator.check(texts)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return await self._inner.embed([redact(text) for text in texts] if self._redact else texts)

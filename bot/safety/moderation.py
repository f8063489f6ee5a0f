"""The moderation check (MODERATION): OpenAI's moderation endpoint, or any server speaking its protocol."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import httpx2
import openai

from bot.errors import PermanentUpstreamError, TransientUpstreamError
from bot.llm import translate_error

SERVICE = "moderation"


@dataclass(frozen=True, slots=True)
class Verdict:
    flagged: bool
    categories: tuple[str, ...] = ()  # the flagged ones, as the endpoint names them

    def said(self) -> str:
        return ", ".join(name.replace("/", " / ").replace("-", " ") for name in self.categories) or "unspecified"


class OpenAIModerator:
    def __init__(self, *, api_key: str, base_url: str | None, model: str, timeout_s: float) -> None:
        self._client = openai.AsyncOpenAI(api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=0)
        self.model = model

    async def aclose(self) -> None:
        await self._client.close()

    async def check(self, texts: Sequence[str]) -> Verdict:
        """One verdict for all of `texts`: flagged if any of them is, with every flagged category."""
        texts = [text for text in texts if text.strip()]
        if not texts:
            return Verdict(False)
        try:
            response = await self._client.moderations.create(model=self.model, input=list(texts))
        except openai.APIError as exc:
            raise _as_moderation(translate_error(exc)) from exc
        except httpx2.HTTPError as exc:
            raise TransientUpstreamError(SERVICE, f"request failed: {type(exc).__name__}: {exc}") from exc
        flagged: list[str] = []
        for result in response.results:
            if result.flagged:
                named = result.categories.model_dump(by_alias=True)
                flagged += [name for name, hit in named.items() if hit and name not in flagged]
        return Verdict(bool(flagged) or any(r.flagged for r in response.results), tuple(flagged))


def _as_moderation(error: TransientUpstreamError | PermanentUpstreamError) -> Exception:
    """The LLM client's reading of the failure, named for this service (the operator's fix is another setting)."""
    if isinstance(error, TransientUpstreamError):
        return TransientUpstreamError(SERVICE, error.detail, retry_after_s=error.retry_after_s)
    return PermanentUpstreamError(
        SERVICE,
        error.detail,
        "The moderation check refused my request. An administrator needs to check MODERATION_BASE_URL and "
        "OPENAI_API_KEY.",
    )

"""The OpenAI client against the stand-in over HTTP: streaming, and every failure mapped into bot.errors."""

from __future__ import annotations

import socket

import pytest

from bot.config import Settings
from bot.errors import ConfigurationError, PermanentUpstreamError, TransientUpstreamError
from bot.llm import OpenAILLM
from bot.ports import ChatMessage
from sandbox.openai_server import StandInLLM, Step

PROMPT = [ChatMessage("system", "be brief"), ChatMessage("user", "hi")]


def client(stand_in: StandInLLM, timeout_s: float = 5.0) -> OpenAILLM:
    return OpenAILLM(api_key="k", base_url=stand_in.base_url, model="gpt-test", timeout_s=timeout_s)


async def collect(llm: OpenAILLM) -> str:
    try:
        return "".join([delta async for delta in llm.stream_chat(PROMPT, max_tokens=100)])
    finally:
        await llm.aclose()


async def test_streams_the_reply_and_sends_model_and_limits(stand_in: StandInLLM) -> None:
    stand_in.script(Step(reply="Hello there, friend."))
    assert await collect(client(stand_in)) == "Hello there, friend."
    body = stand_in.chat_requests()[0]
    assert body["model"] == "gpt-test"
    assert body["max_tokens"] == 100
    assert body["stream"] is True
    assert body["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]


async def test_consecutive_replies_share_one_connection(stand_in: StandInLLM) -> None:
    # Closing a stream at [DONE], before the body's end, closes its connection too: every reply would pay for a
    # new one (a TLS handshake, against a real endpoint).
    stand_in.script(Step(reply="one"), Step(reply="two"), Step(reply="three"))
    llm = client(stand_in)
    try:
        replies = ["".join([d async for d in llm.stream_chat(PROMPT, max_tokens=10)]) for _ in range(3)]
    finally:
        await llm.aclose()
    assert replies == ["one", "two", "three"]
    peers = {r.peer for r in stand_in.requests}
    assert len(stand_in.requests) == 3
    assert len(peers) == 1, peers


@pytest.mark.parametrize(
    ("step", "detail", "retry_after"),
    [
        (Step(status=500), "server error 500", None),
        (Step(status=503, retry_after=7), "server error 503", 7.0),
        (Step(status=429, retry_after=2.5), "rate limited (429)", 2.5),
        (Step(hang=True), "timed out", None),
        (Step(reply="a b c d e f g h", fail_after_chars=4), "stream failed", None),
    ],
)
async def test_transient_failures(stand_in: StandInLLM, step: Step, detail: str, retry_after: float | None) -> None:
    stand_in.script(step)
    with pytest.raises(TransientUpstreamError) as failed:
        await collect(client(stand_in, timeout_s=0.5))
    assert detail in failed.value.detail
    assert failed.value.retry_after_s == retry_after


@pytest.mark.parametrize(
    ("status", "says"),
    [
        (401, "OPENAI_API_KEY"),
        (403, "OPENAI_API_KEY"),
        (404, "OPENAI_MODEL"),
        (400, "rejected this request"),
        (501, "OPENAI_BASE_URL"),  # "not implemented" will not change on a retry
    ],
)
async def test_permanent_failures_carry_a_user_message(stand_in: StandInLLM, status: int, says: str) -> None:
    stand_in.script(Step(status=status))
    with pytest.raises(PermanentUpstreamError) as failed:
        await collect(client(stand_in))
    assert says in failed.value.user_message
    assert len(stand_in.chat_requests()) == 1, "the SDK's own retries are off"


async def test_a_refused_connection_is_called_that_not_a_timeout() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: the connection is refused at once
    llm = OpenAILLM(api_key="k", base_url=f"http://127.0.0.1:{port}/v1", model="gpt-test", timeout_s=5.0)
    with pytest.raises(TransientUpstreamError) as failed:
        await collect(llm)
    assert failed.value.detail.startswith("could not connect"), failed.value.detail
    assert "timed out" not in failed.value.detail


def azure_settings(stand_in: StandInLLM, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "llm_provider": "azure",
        "azure_openai_endpoint": stand_in.base_url.removesuffix("/v1"),
        "azure_openai_api_key": "azure-key",
        "azure_openai_api_version": "2024-10-21",
        "azure_openai_chat_deployment": "chat-deploy",
        "azure_openai_embedding_deployment": "text-embedding-3-small-deploy",
        "embedding_dimensions": 256,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


async def test_azure_goes_to_the_deployments_with_the_api_version_and_api_key(stand_in: StandInLLM) -> None:
    settings = azure_settings(stand_in)
    assert not settings.uses_stand_in_llm
    llm = OpenAILLM.from_settings(settings, stand_in_url="http://127.0.0.1:9/unused")
    stand_in.script(Step(reply="From Azure."))
    try:
        assert "".join([d async for d in llm.stream_chat(PROMPT, max_tokens=50)]) == "From Azure."
        vectors = await llm.embed(["one", "two"])
    finally:
        await llm.aclose()
    assert [len(v) for v in vectors] == [256, 256]
    chat, embeddings = stand_in.requests
    assert chat.path == "/openai/deployments/chat-deploy/chat/completions"
    assert embeddings.path == "/openai/deployments/text-embedding-3-small-deploy/embeddings"
    for request in (chat, embeddings):
        assert request.api_version == "2024-10-21"
        assert request.api_key_header
    assert embeddings.body["dimensions"] == 256


async def test_azure_without_an_endpoint_or_key_says_which_setting_is_missing(stand_in: StandInLLM) -> None:
    with pytest.raises(ConfigurationError, match="LLM_PROVIDER=azure needs AZURE_OPENAI_ENDPOINT"):
        OpenAILLM.from_settings(azure_settings(stand_in, azure_openai_endpoint=""))
    with pytest.raises(ConfigurationError, match="needs AZURE_OPENAI_API_KEY"):
        OpenAILLM.from_settings(azure_settings(stand_in, azure_openai_api_key=""))


async def test_embeddings_are_asked_for_the_configured_width(stand_in: StandInLLM) -> None:
    llm = OpenAILLM(
        api_key="k", base_url=stand_in.base_url, model="m", timeout_s=5, embedding_dimensions=384
    )  # text-embedding-3-small: takes `dimensions`
    try:
        [vector] = await llm.embed(["hello"])
    finally:
        await llm.aclose()
    assert len(vector) == 384
    assert stand_in.requests[-1].body["dimensions"] == 384


async def test_a_model_returning_another_width_is_a_permanent_error_naming_the_fix(stand_in: StandInLLM) -> None:
    # An Ollama-style model: not asked for a width (it would refuse), it returns its own (the stand-in's 1536).
    llm = OpenAILLM(
        api_key="k",
        base_url=stand_in.base_url,
        model="m",
        timeout_s=5,
        embedding_model="nomic-embed-text",
        embedding_dimensions=768,
    )
    try:
        with pytest.raises(PermanentUpstreamError) as raised:
            await llm.embed(["hello"])
    finally:
        await llm.aclose()
    assert "dimensions" not in stand_in.requests[-1].body
    assert "set EMBEDDING_DIMENSIONS=1536 and run `bot index reembed`" in raised.value.user_message


async def test_a_refusal_from_azure_names_the_azure_settings(stand_in: StandInLLM) -> None:
    llm = OpenAILLM.from_settings(azure_settings(stand_in))
    stand_in.script(Step(status=401), Step(status=404))
    try:
        with pytest.raises(PermanentUpstreamError) as refused:
            await collect_open(llm)
        with pytest.raises(PermanentUpstreamError) as missing:
            await collect_open(llm)
    finally:
        await llm.aclose()
    assert "check AZURE_OPENAI_API_KEY" in refused.value.user_message
    assert "check AZURE_OPENAI_CHAT_DEPLOYMENT and AZURE_OPENAI_ENDPOINT" in missing.value.user_message


async def collect_open(llm: OpenAILLM) -> str:
    return "".join([delta async for delta in llm.stream_chat(PROMPT, max_tokens=10)])

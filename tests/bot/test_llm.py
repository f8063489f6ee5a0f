"""The OpenAI client against the stand-in over HTTP: streaming, and every failure mapped into bot.errors."""

from __future__ import annotations

import socket

import pytest

from bot.errors import PermanentUpstreamError, TransientUpstreamError
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

"""The stand-in LLM must satisfy the real openai SDK: every test talks to it through AsyncOpenAI or raw HTTP."""

from __future__ import annotations

import asyncio
import json
import math
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import aiohttp
import openai
import pytest
from jsonschema import Draft202012Validator
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam
from openai.types.shared_params import ResponseFormatJSONSchema

from sandbox.openai_server import StandInLLM, Step

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def llm() -> AsyncIterator[StandInLLM]:
    async with StandInLLM() as server:
        yield server


@pytest.fixture
async def client(llm: StandInLLM) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=llm.base_url, api_key="test-key", max_retries=0) as sdk:
        yield sdk


def user(text: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": text}]


async def stream_chunks(client: openai.AsyncOpenAI, **kwargs: Any) -> list[ChatCompletionChunk]:
    stream = await client.chat.completions.create(model="gpt-test", stream=True, **kwargs)
    return [chunk async for chunk in stream]


def joined_content(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


async def test_streaming_text_equals_non_streaming_text(client: openai.AsyncOpenAI) -> None:
    messages = user("Tell me  about\nthe weather,   please.")
    plain = await client.chat.completions.create(model="gpt-test", messages=messages)
    chunks = await stream_chunks(client, messages=messages, stream_options={"include_usage": True})

    text = plain.choices[0].message.content
    assert text
    assert joined_content(chunks) == text
    assert plain.object == "chat.completion"
    assert plain.choices[0].finish_reason == "stop"
    assert chunks[0].choices[0].delta.role == "assistant"
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) == len(text.split())  # one word per chunk by default
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert plain.usage is not None
    assert chunks[-1].usage.total_tokens == plain.usage.total_tokens


async def test_default_reply_mentions_user_text_and_earlier_count(client: openai.AsyncOpenAI) -> None:
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": "be nice"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "What is the capital of Peru?"},
    ]
    result = await client.chat.completions.create(model="gpt-4o", messages=messages)
    text = result.choices[0].message.content or ""

    assert text == (
        '[stand-in model] You said: "What is the capital of Peru?". I can see 2 earlier messages in this '
        "conversation. This reply comes from the local stand-in, not a real model."
    )
    assert result.model == "gpt-4o"
    prompt_chars = len("be nice") + len("first question") + len("first answer") + len("What is the capital of Peru?")
    assert result.usage is not None
    assert result.usage.prompt_tokens == math.ceil(prompt_chars / 4)
    assert result.usage.completion_tokens == math.ceil(len(text) / 4)
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens

    long_prompt = "x" * 300
    long_result = await client.chat.completions.create(model="m", messages=user(long_prompt))
    assert f'"{"x" * 200}"' in (long_result.choices[0].message.content or "")
    assert "x" * 201 not in (long_result.choices[0].message.content or "")


async def test_scripted_errors_then_reply(llm: StandInLLM, client: openai.AsyncOpenAI) -> None:
    llm.script(Step(status=500), Step(status=429, retry_after=2), Step(reply="finally"))

    with pytest.raises(openai.InternalServerError) as server_error:
        await client.chat.completions.create(model="m", messages=user("a"))
    assert server_error.value.status_code == 500
    assert isinstance(server_error.value.body, dict)
    assert set(server_error.value.body) >= {"message", "type", "code"}

    with pytest.raises(openai.RateLimitError) as rate_limited:
        await client.chat.completions.create(model="m", messages=user("b"))
    assert rate_limited.value.response.headers["retry-after"] == "2"

    result = await client.chat.completions.create(model="m", messages=user("c"))
    assert result.choices[0].message.content == "finally"
    # The queue is empty again, so the default reply is back.
    again = await client.chat.completions.create(model="m", messages=user("d"))
    assert (again.choices[0].message.content or "").startswith("[stand-in model]")


TAGS_FORMAT: ResponseFormatJSONSchema = {
    "type": "json_schema",
    "json_schema": {
        "name": "output",
        "strict": False,
        "schema": {
            "type": "object",
            "required": ["tags", "chapters"],
            "properties": {
                "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3},
                "chapters": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["start", "title"],
                        "properties": {"start": {"type": "number", "minimum": 0}, "title": {"type": "string"}},
                    },
                },
            },
        },
    },
}


async def test_json_schema_requests_get_json_that_matches_the_schema(client: openai.AsyncOpenAI) -> None:
    messages = user("Tag the standup where Dana promised the release notes by Friday")
    plain = await client.chat.completions.create(model="m", messages=messages, response_format=TAGS_FORMAT)
    value = json.loads(plain.choices[0].message.content or "")
    Draft202012Validator(TAGS_FORMAT["json_schema"]["schema"]).validate(value)
    assert 1 <= len(value["tags"]) <= 3
    marker, _, words = value["tags"][0].partition(" ")
    assert marker == "[stand-in]", "strings say they come from the stand-in"
    assert words
    assert set(words.split()) <= set(cast(str, messages[0]["content"]).split()), "and are taken from the user's text"
    assert all(chapter["start"] >= 0 for chapter in value["chapters"])

    chunks = await stream_chunks(client, messages=messages, response_format=TAGS_FORMAT)
    assert json.loads(joined_content(chunks)) == value, "streamed, the same JSON"

    loose = await client.chat.completions.create(
        model="m", messages=user("anything"), response_format={"type": "json_object"}
    )
    assert json.loads(loose.choices[0].message.content or "") == {"answer": "[stand-in] anything"}


async def test_a_scripted_reply_is_returned_verbatim_even_when_json_is_asked_for(
    llm: StandInLLM, client: openai.AsyncOpenAI
) -> None:
    llm.script(Step(reply="not json {"))
    result = await client.chat.completions.create(model="m", messages=user("x"), response_format=TAGS_FORMAT)
    assert result.choices[0].message.content == "not json {"


async def test_scripted_reply_streams_and_delay_applies(llm: StandInLLM, client: openai.AsyncOpenAI) -> None:
    llm.script(Step(reply="  spaced   out\n\ntext ", delay=0.2))
    started = time.monotonic()
    chunks = await stream_chunks(client, messages=user("x"))
    assert time.monotonic() - started >= 0.2
    assert joined_content(chunks) == "  spaced   out\n\ntext "


async def test_tool_calls_non_streaming(llm: StandInLLM, client: openai.AsyncOpenAI) -> None:
    llm.script(Step(tool_calls=[{"name": "get_weather", "arguments": {"city": "Lima", "days": 3}}]))
    result = await client.chat.completions.create(model="m", messages=user("weather?"))

    choice = result.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert calls is not None
    assert len(calls) == 1
    assert calls[0].type == "function"
    assert calls[0].id
    assert calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == {"city": "Lima", "days": 3}


async def test_tool_calls_streaming(llm: StandInLLM, client: openai.AsyncOpenAI) -> None:
    tool_calls = [
        {"name": "get_weather", "arguments": {"city": "Lima"}},
        {"name": "search", "arguments": {"query": "umbrellas", "limit": 5}},
    ]
    llm.script(Step(tool_calls=tool_calls))
    chunks = await stream_chunks(client, messages=user("weather?"))

    # Accumulate exactly as an SDK user would: by index, concatenating argument fragments.
    names: dict[int, str] = {}
    arguments: dict[int, str] = {}
    fragments = 0
    for chunk in chunks:
        for delta in chunk.choices[0].delta.tool_calls or []:
            assert delta.function is not None
            if delta.function.name:
                names[delta.index] = delta.function.name
            if delta.function.arguments:
                fragments += 1
                arguments[delta.index] = arguments.get(delta.index, "") + delta.function.arguments
    assert names == {0: "get_weather", 1: "search"}
    assert {i: json.loads(a) for i, a in arguments.items()} == {
        0: {"city": "Lima"},
        1: {"query": "umbrellas", "limit": 5},
    }
    assert fragments > len(tool_calls)  # arguments really arrive in pieces
    assert chunks[-1].choices[0].finish_reason == "tool_calls"

    # The SDK's own accumulator agrees.
    llm.script(Step(tool_calls=tool_calls))
    async with client.chat.completions.stream(model="m", messages=user("again")) as stream:
        final = await stream.get_final_completion()
    parsed = final.choices[0].message.tool_calls or []
    assert [(c.function.name, json.loads(c.function.arguments)) for c in parsed] == [
        ("get_weather", {"city": "Lima"}),
        ("search", {"query": "umbrellas", "limit": 5}),
    ]


async def test_embeddings_shape_norm_and_similarity(llm: StandInLLM, client: openai.AsyncOpenAI) -> None:
    texts = [
        "the cat sat on the warm mat",
        "a cat sat on a mat",
        "quarterly revenue forecast for enterprise customers",
    ]
    # Default SDK call asks for base64; the explicit float call must give the same vectors.
    b64 = await client.embeddings.create(model="text-embedding-3-small", input=texts)
    floats = await client.embeddings.create(model="text-embedding-3-small", input=texts, encoding_format="float")
    assert llm.requests[0].body["encoding_format"] == "base64"

    vectors = [d.embedding for d in b64.data]
    assert [d.index for d in b64.data] == [0, 1, 2]
    assert all(len(v) == 1536 for v in vectors)
    assert all(abs(math.sqrt(sum(x * x for x in v)) - 1.0) < 1e-5 for v in vectors)
    for packed, plain in zip(vectors, (d.embedding for d in floats.data), strict=True):
        assert max(abs(a - b) for a, b in zip(packed, plain, strict=True)) < 1e-6
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.3
    assert cosine(vectors[1], vectors[1]) == pytest.approx(1.0, abs=1e-5)

    single = await client.embeddings.create(model="e", input="the cat sat", dimensions=64)
    assert len(single.data) == 1
    assert len(single.data[0].embedding) == 64
    again = await client.embeddings.create(model="e", input="the cat sat", dimensions=64)
    assert again.data[0].embedding == single.data[0].embedding
    assert single.usage.prompt_tokens == math.ceil(len("the cat sat") / 4)


async def test_hang_times_out_client(llm: StandInLLM) -> None:
    llm.script(Step(hang=True))
    async with openai.AsyncOpenAI(base_url=llm.base_url, api_key="k", max_retries=0, timeout=0.5) as sdk:
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            await sdk.chat.completions.create(model="m", messages=user("hello?"))
        assert 0.4 < time.monotonic() - started < 3


async def test_fail_after_chars_breaks_stream_after_partial_content(
    llm: StandInLLM, client: openai.AsyncOpenAI
) -> None:
    reply = "one two three four five six seven"
    llm.script(Step(reply=reply, fail_after_chars=10))
    received = ""
    stream = await client.chat.completions.create(model="m", messages=user("x"), stream=True)
    with pytest.raises(openai.APIError):  # noqa: PT012 (the error comes mid-iteration, after partial content)
        async for chunk in stream:
            if chunk.choices:
                received += chunk.choices[0].delta.content or ""
    assert received == reply[:10]


async def test_long_reply_has_exact_length(client: openai.AsyncOpenAI) -> None:
    plain = await client.chat.completions.create(model="m", messages=user("please LONG:5000 thanks"))
    text = plain.choices[0].message.content or ""
    assert len(text) == 5000
    assert not text[-1].isspace()
    assert "\n\n" in text
    chunks = await stream_chunks(client, messages=user("please LONG:5000 thanks"))
    assert joined_content(chunks) == text


async def test_max_tokens_truncates_with_length_finish(llm: StandInLLM, client: openai.AsyncOpenAI) -> None:
    llm.script(Step(reply="x" * 100))
    result = await client.chat.completions.create(model="m", messages=user("x"), max_tokens=5)
    assert result.choices[0].message.content == "x" * 20
    assert result.choices[0].finish_reason == "length"

    llm.script(Step(reply="short"))
    chunks = await stream_chunks(client, messages=user("x"), max_completion_tokens=50)
    assert joined_content(chunks) == "short"
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_latency_settings_and_reset(llm: StandInLLM, client: openai.AsyncOpenAI) -> None:
    llm.first_token_delay = 0.3
    llm.token_delay = 0.02
    llm.script(Step(reply="a b c d e f"))
    started = time.monotonic()
    stream = await client.chat.completions.create(model="m", messages=user("x"), stream=True)
    arrivals: list[float] = []
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic() - started)
    assert arrivals[0] >= 0.3
    assert arrivals[-1] - arrivals[0] >= 5 * 0.02 * 0.9

    llm.script(Step(reply="left over"))
    llm.reset()
    assert (llm.token_delay, llm.first_token_delay) == (0.0, 0.0)
    assert llm.requests == []
    assert llm.chat_requests() == []
    started = time.monotonic()
    result = await client.chat.completions.create(model="m", messages=user("after reset"))
    assert time.monotonic() - started < 0.25
    assert "after reset" in (result.choices[0].message.content or "")


async def test_recorded_requests_contain_prompt(llm: StandInLLM, client: openai.AsyncOpenAI) -> None:
    await client.chat.completions.create(model="m", messages=user("remember the pineapple"), temperature=0.5)
    await client.embeddings.create(model="e", input="pineapple")
    await client.chat.completions.create(model="m", messages=user("second"), stream=True)

    assert [r.path for r in llm.requests] == ["/v1/chat/completions", "/v1/embeddings", "/v1/chat/completions"]
    assert llm.requests[0].at <= llm.requests[1].at <= llm.requests[2].at
    chats = llm.chat_requests()
    assert len(chats) == 2
    assert chats[0]["messages"] == [{"role": "user", "content": "remember the pineapple"}]
    assert chats[0]["temperature"] == 0.5
    assert chats[1]["stream"] is True


async def test_models_endpoint(client: openai.AsyncOpenAI) -> None:
    models = await client.models.list()
    assert "stand-in" in [m.id for m in models.data]
    assert (await client.models.retrieve("gpt-4.1-mini")).id == "gpt-4.1-mini"


async def test_auth_and_malformed_requests_get_openai_errors(llm: StandInLLM) -> None:
    url = llm.base_url + "/chat/completions"
    auth = {"Authorization": "Bearer whatever"}
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json={"model": "m", "messages": [{"role": "user", "content": "x"}]}) as resp:
            assert resp.status == 401
            assert (await resp.json())["error"]["type"] == "authentication_error"
        async with http.post(url, data=b"{not json", headers=auth) as resp:
            assert resp.status == 400
            assert set((await resp.json())["error"]) >= {"message", "type", "code"}
        async with http.post(url, json={"model": "m"}, headers=auth) as resp:
            assert resp.status == 400
            assert "messages" in (await resp.json())["error"]["message"]
    assert llm.requests == []

    async with openai.AsyncOpenAI(base_url=llm.base_url, api_key="k", max_retries=0) as sdk:
        with pytest.raises(openai.BadRequestError):
            await sdk.chat.completions.create(model="m", messages=[])


async def test_control_endpoints_on_subprocess_server() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sandbox.openai_server",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        cwd=PROJECT_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        base_url = (await asyncio.wait_for(proc.stdout.readline(), timeout=10)).decode().strip()
        assert base_url.startswith("http://127.0.0.1:")
        assert base_url.endswith("/v1")
        root = base_url.removesuffix("/v1")
        async with (
            aiohttp.ClientSession() as http,
            openai.AsyncOpenAI(base_url=base_url, api_key="k", max_retries=0) as sdk,
        ):
            steps = {"steps": [{"reply": "scripted over http"}, {"status": 503, "retry_after": 1.5}]}
            async with http.post(root + "/_sandbox/script", json=steps) as resp:
                assert resp.status == 200
            result = await sdk.chat.completions.create(model="m", messages=user("subprocess prompt"))
            assert result.choices[0].message.content == "scripted over http"
            with pytest.raises(openai.InternalServerError) as unavailable:
                await sdk.chat.completions.create(model="m", messages=user("second"))
            assert unavailable.value.status_code == 503
            assert unavailable.value.response.headers["retry-after"] == "1.5"

            async with http.get(root + "/_sandbox/requests") as resp:
                recorded = (await resp.json())["requests"]
            assert [r["path"] for r in recorded] == ["/v1/chat/completions"] * 2
            assert recorded[0]["body"]["messages"][0]["content"] == "subprocess prompt"

            async with http.post(root + "/_sandbox/script", json={"steps": [{"bogus": 1}]}) as resp:
                assert resp.status == 400
            async with http.post(root + "/_sandbox/latency", json={"first_token_delay": 0.3}) as resp:
                assert resp.status == 200
            started = time.monotonic()
            await sdk.chat.completions.create(model="m", messages=user("slow"))
            assert time.monotonic() - started >= 0.3

            async with http.post(root + "/_sandbox/reset") as resp:
                assert resp.status == 200
            started = time.monotonic()
            await sdk.chat.completions.create(model="m", messages=user("fast again"))
            assert time.monotonic() - started < 0.25
            async with http.get(root + "/_sandbox/requests") as resp:
                recorded = (await resp.json())["requests"]
            assert [r["body"]["messages"][0]["content"] for r in recorded] == ["fast again"]
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), timeout=5)
    assert code == 0


async def test_azure_deployment_paths_need_the_api_key_header_and_an_api_version(llm: StandInLLM) -> None:
    root = llm.base_url.removesuffix("/v1")
    chat = {"messages": [{"role": "user", "content": "hi"}], "model": "ignored"}
    async with aiohttp.ClientSession() as http:
        path = f"{root}/openai/deployments/my-gpt4o/chat/completions"
        async with http.post(path, json=chat, params={"api-version": "2024-10-21"}) as answer:
            assert answer.status == 401, "no api-key header"
        async with http.post(path, json=chat, headers={"api-key": "k"}) as answer:
            assert answer.status == 404, "no api-version"
        async with http.post(path, json=chat, headers={"api-key": "k"}, params={"api-version": "2024-10-21"}) as ok:
            assert ok.status == 200
            assert (await ok.json())["choices"][0]["message"]["content"]
        embeddings = f"{root}/openai/deployments/my-embedder/embeddings"
        body = {"input": ["a", "b"], "dimensions": 64}
        async with http.post(embeddings, json=body, headers={"api-key": "k"}, params={"api-version": "v"}) as ok:
            assert ok.status == 200
            assert [len(item["embedding"]) for item in (await ok.json())["data"]] == [64, 64]
    recorded = [r for r in llm.requests if r.deployment]
    assert [(r.deployment, r.api_version, r.api_key_header) for r in recorded] == [
        ("my-gpt4o", "2024-10-21", True),
        ("my-embedder", "v", True),
    ]

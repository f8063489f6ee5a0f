from __future__ import annotations

from adapters.console.inbound import console_thread
from adapters.console.outbound import stream_key
from adapters.web.inbound import web_thread
from adapters.web.outbound import WebOutbound
from bot.runtime import Runtime
from tests.conftest import thread_view


async def test_posts_and_edits_go_to_the_web_threads_own_stream(runtime: Runtime) -> None:
    outbound = WebOutbound(runtime.redis)
    thread = web_thread("same-name")
    posted = await outbound.post_message(thread, "Hel", idempotency_key="k1")
    await outbound.edit_message(thread, posted.message_id, "Hello")
    assert await thread_view(runtime, thread) == ["Hello"]
    # A console thread of the same name is another conversation.
    assert stream_key(thread) != stream_key(console_thread("same-name"))
    assert await thread_view(runtime, console_thread("same-name")) == []
    again = await outbound.post_message(thread, "Hel", idempotency_key="k1", recovering=True)
    assert again.existed
    assert again.message_id == posted.message_id

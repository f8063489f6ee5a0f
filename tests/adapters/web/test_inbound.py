from __future__ import annotations

from adapters.web.inbound import new_thread_name, to_command, to_event, valid_thread_name, web_thread
from bot.events import FileRef


def test_a_line_becomes_a_message_in_a_web_thread() -> None:
    event = to_event("hello", "w-1", user="operator", event_id="e1")
    assert event.thread == web_thread("w-1")
    assert (event.thread.platform, event.thread.workspace_id, event.thread.channel_id) == ("web", "local", "web")
    assert (event.event_id, event.user_id, event.text) == ("e1", "operator", "hello")


def test_a_file_shared_without_words_says_so() -> None:
    ref = FileRef(file_id="f", name="talk.wav", mime_type="audio/wav", size=3, url="file:///tmp/talk.wav")
    assert to_event("", "w-1", user="operator", files=(ref,)).text == "Shared “talk.wav”"


def test_a_command_is_split_into_name_and_text() -> None:
    command = to_command("/remind  in 2 hours stretch ", "w-1", user="operator")
    assert (command.command, command.text, command.thread) == ("/remind", "in 2 hours stretch", web_thread("w-1"))
    assert command.event_id.startswith("web-")


def test_thread_names_are_short_and_plain() -> None:
    assert valid_thread_name(new_thread_name())
    for bad in ("", "a b", "../x", "x" * 65, "a:b"):
        assert not valid_thread_name(bad), bad

"""Small pieces of the inbound side: mentions, thread names, attachment-only messages, where a conversation lives."""

from __future__ import annotations

from adapters.discord.inbound import message_text, strip_mention, thread_name, thread_ref
from bot.events import FileRef, ThreadRef


def test_the_bot_mention_is_taken_out_of_the_text() -> None:
    assert strip_mention("<@42> what's up?", 42) == "what's up?"
    assert strip_mention("hey <@!42>, and <@7>", 42) == "hey , and <@7>"


def test_thread_names_come_from_the_first_line_within_discords_limit() -> None:
    assert thread_name("Deploy plan\nstep one") == "Deploy plan"
    assert thread_name("   ") == "Conversation"
    long = thread_name("x" * 150)
    assert len(long) == 90
    assert long.endswith("…")


def test_a_message_with_only_files_says_what_was_shared() -> None:
    clip = FileRef("1", "talk.mp3", "audio/mpeg", 10, "https://cdn.discordapp.com/a")
    assert message_text("", (clip,)) == "Shared “talk.mp3”"
    assert message_text("listen", (clip,)) == "listen"


def test_threads_live_under_their_parent_channel_and_dms_under_dm() -> None:
    assert thread_ref(1, 2, 3) == ThreadRef("discord", "1", "2", "3")
    assert thread_ref(1, 2) == ThreadRef("discord", "1", "2", "2")
    assert thread_ref(None, 5) == ThreadRef("discord", "dm", "5", "5")

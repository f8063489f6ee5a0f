"""The model writes Markdown; Slack's `text` field speaks mrkdwn. Code is kept verbatim, the rest is translated."""

from __future__ import annotations

import re

# Fenced blocks first (they may hold backticks), then inline code; both are left untouched apart from escaping.
_CODE_RE = re.compile(r"```[^\n`]*\n?(?P<block>.*?)```|`(?P<inline>[^`\n]+)`", re.DOTALL)
_HEADING_RE = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
_BULLET_RE = re.compile(r"^(\s*)[-*+]\s+", re.MULTILINE)
_BOLD_RE = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*|__(?=\S)(.+?)(?<=\S)__")
_ITALIC_RE = re.compile(r"(?<![*\w])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![*\w])")
_STRIKE_RE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_LINK_RE = re.compile(r"\[([^\]\n]+)\]\((https?://[^\s)]+)\)")
# A user mention (`<@U123>`) survives escaping: the bot writes them itself (a reminder names its owner). Broadcasts
# (`<!channel>`, `<!here>`) do not: a model's text must never ping a whole channel.
_MENTION_RE = re.compile(r"&lt;@([UW][A-Z0-9]{2,})&gt;")
# A placeholder for Slack's bold marker while single-asterisk italics are being rewritten.
_BOLD = "\x00"


def escape(text: str) -> str:
    """Slack reads &, < and > as control characters everywhere, code included."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_mrkdwn(markdown: str) -> str:
    out: list[str] = []
    position = 0
    for match in _CODE_RE.finditer(markdown):
        out.append(_prose(markdown[position : match.start()]))
        if match.group("block") is not None:
            out.append("```\n" + escape(match.group("block").strip("\n")) + "\n```")
        else:
            out.append("`" + escape(match.group("inline")) + "`")
        position = match.end()
    out.append(_prose(markdown[position:]))
    return "".join(out)


def _prose(text: str) -> str:
    if not text:
        return text
    text = _MENTION_RE.sub(r"<@\1>", escape(text))
    text = _HEADING_RE.sub(lambda m: f"{_BOLD}{m.group(1)}{_BOLD}", text)
    text = _BULLET_RE.sub(lambda m: f"{m.group(1)}• ", text)
    text = _BOLD_RE.sub(lambda m: f"{_BOLD}{m.group(1) or m.group(2)}{_BOLD}", text)
    text = _ITALIC_RE.sub(r"_\1_", text)
    text = _STRIKE_RE.sub(r"~\1~", text)
    text = _LINK_RE.sub(lambda m: f"<{m.group(2)}|{m.group(1)}>", text)
    return text.replace(_BOLD, "*")

"""The model writes Markdown; Slack's `text` field speaks mrkdwn. The Markdown is parsed by markdown-it-py (CommonMark
with GFM's strikethrough and tables) and its tree written out as mrkdwn, so nesting (`***both***`, bold around code,
quotes holding lists) and links whose URLs hold parentheses come out as written. Code is kept verbatim."""

from __future__ import annotations

import re
from collections.abc import Iterable

from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

# No HTML: Slack has none, and `<!channel>` must stay text (escaped), never a tag passed through.
_PARSER = MarkdownIt("commonmark").enable(["strikethrough", "table"]).disable(["html_block", "html_inline"])
# A user mention (`<@U123>`) survives escaping: the bot writes them itself (a reminder names its owner). Broadcasts
# (`<!channel>`, `<!here>`) do not: a model's text must never ping a whole channel.
_MENTION_RE = re.compile(r"&lt;@([UW][A-Z0-9]{2,})&gt;")
_BULLET = "•"


def escape(text: str) -> str:
    """Slack reads &, < and > as control characters everywhere, code included."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_mrkdwn(markdown: str) -> str:
    # The white space around the text is kept: a long reply is posted in parts cut at spaces and line breaks, and
    # the parts must still join up into the whole.
    body = markdown.strip()
    if not body:
        return markdown
    start = markdown.index(body[0])
    rendered = _blocks(SyntaxTreeNode(_PARSER.parse(body)).children, indent="")
    return markdown[:start] + rendered + markdown[start + len(body) :]


def _blocks(nodes: Iterable[SyntaxTreeNode], indent: str) -> str:
    """Block nodes in order, with the blank lines between them that the source had (none, or one)."""
    out: list[str] = []
    last_line: int | None = None
    for node in nodes:
        text = _block(node, indent)
        if out:
            gap = node.map is not None and last_line is not None and node.map[0] > last_line
            out.append("\n\n" if gap else "\n")
        out.append(text)
        last_line = node.map[1] if node.map is not None else last_line
    return "".join(out)


def _block(node: SyntaxTreeNode, indent: str) -> str:
    kind = node.type
    if kind == "paragraph":
        return _inline_of(node)
    if kind == "heading":
        return _strong(_inline_of(node, in_bold=True))
    if kind in ("bullet_list", "ordered_list"):
        return _list(node, indent)
    if kind == "blockquote":
        inner = _blocks(node.children, indent="")
        return "\n".join(f"> {line}" if line else ">" for line in inner.split("\n"))
    if kind in ("fence", "code_block"):
        return "```\n" + escape(node.content.rstrip("\n")) + "\n```"
    if kind == "hr":
        return "──────────"
    if kind == "table":
        return _table(node)
    return escape(node.content)


def _list(node: SyntaxTreeNode, indent: str) -> str:
    start = int(str(node.attrs.get("start", 1))) if node.type == "ordered_list" else 0
    lines: list[str] = []
    for number, item in enumerate(node.children, start=start):
        marker = f"{number}. " if node.type == "ordered_list" else f"{_BULLET} "
        body = _blocks(item.children, indent=indent + "  ") if item.children else ""
        # Nested lists carry their own indent; other continuation lines line up under the item's text.
        first, *rest = body.split("\n") if body else [""]
        lines.append(f"{indent}{marker}{first}")
        lines.extend(line if line.startswith(indent + "  ") or not line else f"{indent}  {line}" for line in rest)
    return "\n".join(lines)


def _table(node: SyntaxTreeNode) -> str:
    """Slack has no tables: a code block keeps the columns aligned (cells as plain text)."""
    rows = [[_plain(cell) for cell in row.children] for section in node.children for row in section.children]
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(max(map(len, rows)))]
    lines = [" | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return "```\n" + escape("\n".join(lines)) + "\n```"


def _inline_of(node: SyntaxTreeNode, *, in_bold: bool = False) -> str:
    return "".join(_inline(child, in_bold) for inline in node.children for child in inline.children)


def _inline(node: SyntaxTreeNode, in_bold: bool) -> str:
    kind = node.type
    if kind == "text":
        return _MENTION_RE.sub(r"<@\1>", escape(node.content))
    if kind in ("softbreak", "hardbreak"):
        return "\n"
    if kind == "code_inline":
        return "`" + escape(node.content) + "`"
    inner = "".join(_inline(child, in_bold or kind == "strong") for child in node.children)
    if kind == "strong":
        return inner if in_bold else _strong(inner)
    if kind == "em":
        return f"_{inner}_"
    if kind == "s":
        return f"~{inner}~"
    if kind == "link":
        href = _url(str(node.attrs.get("href", "")))
        label = _plain(node)
        return f"<{href}>" if node.markup == "autolink" or not label or label == href else f"<{href}|{escape(label)}>"
    if kind == "image":
        # Slack shows no inline images in text: the picture becomes a link named by its alt text.
        href = _url(str(node.attrs.get("src", "")))
        label = _plain(node)
        return f"<{href}|{escape(label)}>" if label else f"<{href}>"
    return inner


def _strong(text: str) -> str:
    return f"*{text}*" if text else text


def _plain(node: SyntaxTreeNode) -> str:
    """A node's text without formatting (link labels, alt text, table cells): Slack formats none of them."""
    if node.type in ("text", "code_inline"):
        return node.content
    if node.type in ("softbreak", "hardbreak"):
        return " "
    return "".join(_plain(child) for child in node.children)


def _url(href: str) -> str:
    # Inside <url|label>, `|` and `>` would end the URL early; percent-encoded they mean the same URL.
    return href.replace("&", "&amp;").replace("|", "%7C").replace(">", "%3E").replace("<", "%3C")

"""Slack Block Kit (https://api.slack.com/block-kit): the blocks of one alert message, within Slack's limits.

Pure: :func:`pipeline.core.alerts.render` decides what a message says, this module how Slack is given it — a
``header`` block (``plain_text``, at most :data:`HEADER_LIMIT` characters), one ``section`` per line (``mrkdwn``,
at most :data:`TEXT_LIMIT` characters each), and a ``context`` block with the time. A message holds at most
:data:`MAX_BLOCKS` blocks; Slack refuses the whole message (``invalid_blocks``) when one limit is passed, so a
text too long is cut here, with ``…``, never sent whole.

Slack parses ``&``, ``<`` and ``>`` in text as control characters: user text (KPI names, partitions, errors'
messages) is escaped with :func:`escape`, and a link is written ``<url|label>`` only for an http(s) URL — a local
path (the report beside a DuckDB warehouse) stays text, since Slack cannot open it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Block = dict[str, Any]  # one block, as the JSON Slack is sent

HEADER_LIMIT = 150  # a header block's plain_text
TEXT_LIMIT = 3000  # a section's (and a context element's) text
MAX_BLOCKS = 50  # blocks per message
FALLBACK_LIMIT = 40_000  # the message's top-level `text` (its notification fallback): Slack refuses more
ELLIPSIS = "…"
_ENTITIES = ("&amp;", "&lt;", "&gt;")


def escape(text: str) -> str:
    """Slack's three control characters, escaped as its documentation asks (&, <, >)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def is_web_link(link: str) -> bool:
    """Whether Slack can open ``link``: an http(s) URL (a local path cannot be opened from Slack)."""
    return link.startswith(("https://", "http://"))


def link(url: str, label: str) -> str:
    """``<url|label>`` for an http(s) URL; any other link as escaped text. The characters that would end the
    control sequence early (``|``, ``<``, ``>``) and spaces are percent-encoded in the URL, which opens the same
    page."""
    if not is_web_link(url):
        return escape(url)
    safe = url.replace(" ", "%20").replace("|", "%7C").replace("<", "%3C").replace(">", "%3E")
    return f"<{safe}|{escape(label)}>"


def clip(escaped: str, limit: int) -> str:
    """``escaped`` (text already escaped) cut to at most ``limit`` characters with ``…``, never inside an entity
    (``&amp;`` half cut would show as text)."""
    if len(escaped) <= limit:
        return escaped
    cut = escaped[: max(limit - len(ELLIPSIS), 0)]
    amp = cut.rfind("&", max(len(cut) - 4, 0))
    if amp >= 0 and not any(escaped.startswith(entity, amp) and amp + len(entity) <= len(cut) for entity in _ENTITIES):
        cut = cut[:amp]
    return cut + ELLIPSIS


def header(text: str) -> Block:
    """The message's title (escaped, cut to :data:`HEADER_LIMIT`)."""
    return {"type": "header", "text": {"type": "plain_text", "text": clip(escape(text), HEADER_LIMIT)}}


def section(mrkdwn: str) -> Block:
    """One ``section`` of mrkdwn (already escaped and formatted), cut to :data:`TEXT_LIMIT`."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(mrkdwn, TEXT_LIMIT)}}


def context(mrkdwn: str) -> Block:
    """A ``context`` block: one line of small grey text (already escaped)."""
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(mrkdwn, TEXT_LIMIT)}]}


def message_blocks(title: str, sections: Sequence[str], notes: Sequence[str]) -> tuple[Block, ...]:
    """``header`` (``title``), a ``section`` per mrkdwn text of ``sections``, a ``context`` per note; ValueError
    when they are more than :data:`MAX_BLOCKS` (the caller keeps its lines fewer: a bug otherwise)."""
    blocks = (header(title), *(section(text) for text in sections), *(context(note) for note in notes))
    if len(blocks) > MAX_BLOCKS:
        raise ValueError(f"{len(blocks)} blocks in one Slack message, at most {MAX_BLOCKS}")
    return blocks

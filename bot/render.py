"""Jinja2 templates → Block Kit JSON and letters.

Templates emit JSON and every interpolated value goes through `|tojson`, so user text can never
break the structure; user text shown as mrkdwn also goes through `|mrkdwn` so it cannot ping
(`<!channel>`) or hide links.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from bot.i18n import Translator, format_datetime, format_time

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"

ELLIPSIS = "…"


def escape_mrkdwn(text: str) -> str:
    """Escape the three characters Slack's mrkdwn gives meaning to (`&`, `<`, `>`)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate_escaped(text: str, limit: int) -> str:
    """Escape, then cut to `limit` characters without splitting an `&…;` entity."""
    escaped = escape_mrkdwn(text)
    if len(escaped) <= limit:
        return escaped
    cut = escaped[: max(0, limit - 1)]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + ELLIPSIS


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 1)] + ELLIPSIS


def quote_chunks(text: str, size: int = 2800) -> list[str]:
    """User text as escaped mrkdwn block quotes, split so each piece fits one text object.

    Escaping can make a 3000-character answer longer than Slack's 3000-character limit; it is
    split across blocks rather than cut, so the manager reads every word the reporter wrote.
    """
    lines = ["> " + line if line else ">" for line in escape_mrkdwn(text.strip()).split("\n")]
    chunks: list[str] = []
    current = ""
    for line in lines:
        while len(line) > size:  # one very long line: split it, never inside an entity
            cut = size
            amp = line.rfind("&", 0, cut)
            if amp != -1 and ";" not in line[amp:cut]:
                cut = amp
            piece, line = line[:cut], "> " + line[cut:]
            if current:
                chunks.append(current)
                current = ""
            chunks.append(piece)
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > size:
            chunks.append(current)
            current = line
        else:
            current = candidate
    if current:
        chunks.append(current)
    return chunks or [">"]


@cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATE_DIR)),
        undefined=StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.policies["json.dumps_kwargs"] = {"ensure_ascii": False, "sort_keys": False}
    env.filters["mrkdwn"] = lambda v, limit=3000: truncate_escaped(str(v), limit)
    env.filters["quote_chunks"] = quote_chunks
    env.filters["truncate_text"] = lambda v, limit: truncate(str(v), limit)
    env.filters["epoch"] = lambda v: int(v.timestamp())
    return env


class Renderer:
    """Renders templates for one reader: their language and their time zone."""

    def __init__(self, locale: str, tz: str | None) -> None:
        self.locale = locale
        self.tz = tz
        self._ = Translator(locale)

    def dt(self, value: datetime | None) -> str:
        return format_datetime(value, self.tz, self.locale) if value else "-"

    def time(self, value: datetime) -> str:
        return format_time(value, self.tz)

    def context(self, **ctx: Any) -> dict[str, Any]:
        return {"_": self._, "dt": self.dt, "hm": self.time, "locale": self.locale, **ctx}

    def blocks(self, name: str, **ctx: Any) -> Any:
        """Render `templates/blocks/<name>.json.j2` into Python data."""
        text = environment().get_template(f"blocks/{name}.json.j2").render(self.context(**ctx))
        return json.loads(text)

    def text(self, name: str, **ctx: Any) -> str:
        """Render a plain-text or markdown template (letters, fallback texts)."""
        return environment().get_template(name).render(self.context(**ctx))

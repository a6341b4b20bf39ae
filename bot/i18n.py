"""Message catalogs (gettext .po files under locale/) and time formatting per user.

Keys are stable message ids such as ``modal.title``; each language has its own catalog, read
with Babel at start-up (no compile step, so a fresh checkout runs as it is). A key missing in
one language is a bug that the tests catch, not something to paper over at run time.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.messages.pofile import read_po

from bot.config import LOCALES

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"

WEEKDAYS_JA = "月火水木金土日"


@cache
def catalog(locale: str) -> dict[str, str]:
    """All messages of one language, id → text, from every .po file of that language.

    One file per part of the workflow (messages.po, reminders.po, …) keeps edits apart.
    """
    messages: dict[str, str] = {}
    for path in sorted((LOCALE_DIR / locale / "LC_MESSAGES").glob("*.po")):
        with path.open("rb") as fh:
            po = read_po(fh, locale=locale)
        for m in po:
            if m.id and m.string:
                key = str(m.id)
                if key in messages:
                    raise ValueError(f"message {key!r} defined twice in the {locale!r} catalogs")
                messages[key] = str(m.string)
    return messages


def t(locale: str, key: str, /, **params: object) -> str:
    """Translate `key` into `locale` and fill `{name}` placeholders."""
    text = catalog(locale if locale in LOCALES else "en").get(key)
    if text is None:
        raise KeyError(f"message {key!r} missing from the {locale!r} catalog")
    return text.format(**params) if params else text


class Translator:
    """`t` bound to one language, handed to templates as `_`."""

    def __init__(self, locale: str) -> None:
        self.locale = locale

    def __call__(self, key: str, /, **params: object) -> str:
        return t(self.locale, key, **params)


def resolve_locale(slack_locale: str | None, default: str) -> str:
    """Map Slack's locale (``ja-JP``, ``en-US``, …) to a language we ship."""
    if slack_locale:
        lang = slack_locale.replace("_", "-").split("-")[0].lower()
        if lang in LOCALES:
            return lang
        return "en" if default not in LOCALES else default
    return default


def zone(tz: str | None) -> ZoneInfo:
    """The user's Slack time zone, UTC when unknown or unusable."""
    if tz:
        try:
            return ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return ZoneInfo("UTC")


def format_datetime(value: datetime, tz: str | None, locale: str) -> str:
    """A date and time as the reader expects it, in their own time zone."""
    local = value.astimezone(zone(tz))
    abbrev = local.tzname() or ""
    if locale == "ja":
        wd = WEEKDAYS_JA[local.weekday()]
        return f"{local:%Y/%m/%d}({wd}) {local:%H:%M} {abbrev}".strip()
    return f"{local:%a %d %b %Y}, {local:%H:%M} {abbrev}".strip()


def format_time(value: datetime, tz: str | None) -> str:
    """Just the clock time (for "I'll call you back by 15:30")."""
    local = value.astimezone(zone(tz))
    return f"{local:%H:%M}"

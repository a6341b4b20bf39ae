"""Telling someone, privately, that a click was refused."""

from __future__ import annotations

from typing import TYPE_CHECKING

from slack_bolt import Respond

from bot.i18n import t
from bot.workflow import Refused

if TYPE_CHECKING:
    from bot.app import Runtime


def refuse(runtime: Runtime, respond: Respond, user: str, refused: Refused) -> None:
    """Through the action's response_url: postEphemeral fails outside the conversation."""
    locale = runtime.profiles.get(user).locale
    respond(
        text=t(locale, refused.key, **refused.params),
        response_type="ephemeral",
        replace_original=False,
    )

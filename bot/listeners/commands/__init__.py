"""Slash commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

from slack_bolt import App

from bot.ids import COMMAND
from bot.listeners.commands import mistake

if TYPE_CHECKING:
    from bot.app import Runtime


def register(app: App, runtime: Runtime) -> None:
    app.command(COMMAND)(mistake.handler(runtime))

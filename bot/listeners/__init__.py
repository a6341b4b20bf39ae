"""Slack listeners, one package per Slack surface, each with `register(app, runtime)`.

Listeners stay thin: parse the payload, call the workflow, render, send.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from slack_bolt import App

from bot.listeners import actions, commands, errors, events, views

if TYPE_CHECKING:
    from bot.app import Runtime


def register(app: App, runtime: Runtime) -> None:
    errors.register(app, runtime)
    commands.register(app, runtime)
    views.register(app, runtime)
    actions.register(app, runtime)
    events.register(app, runtime)

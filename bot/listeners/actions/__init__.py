"""Button clicks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from slack_bolt import App

from bot.ids import Action
from bot.listeners.actions import decision, reporter

if TYPE_CHECKING:
    from bot.app import Runtime


def register(app: App, runtime: Runtime) -> None:
    app.action(Action.APPROVE)(decision.approve_handler(runtime, will_attend=False))
    app.action(Action.APPROVE_JOIN)(decision.approve_handler(runtime, will_attend=True))
    app.action(Action.REQUEST_CHANGES)(decision.request_changes_handler(runtime))
    app.action(Action.WITHDRAW)(reporter.withdraw_handler(runtime))
    app.action(Action.EDIT_REPORT)(reporter.edit_handler(runtime))

"""Modal submissions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from slack_bolt import App

from bot.ids import Callback
from bot.listeners.views import apology, comment, promises, report

if TYPE_CHECKING:
    from bot.app import Runtime


def register(app: App, runtime: Runtime) -> None:
    app.view(Callback.REPORT)(report.handler(runtime))
    app.view(Callback.REQUEST_CHANGES)(comment.request_changes_handler(runtime))
    app.view(Callback.WITHDRAW)(comment.withdraw_handler(runtime))
    app.view(Callback.LETTER)(apology.letter_handler(runtime))
    app.view(Callback.APOLOGY)(apology.apology_handler(runtime))
    app.view(Callback.PLAN)(apology.plan_handler(runtime))
    app.view(Callback.PROMISE_ADD)(promises.add_handler(runtime))
    app.view(Callback.PROMISE_NEXT)(promises.next_handler(runtime))
    app.view(Callback.PROMISE_MOVE)(promises.move_handler(runtime))
    app.view(Callback.REASSIGN)(promises.reassign_handler(runtime))

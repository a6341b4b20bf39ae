"""Button clicks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from slack_bolt import App

from bot.ids import Action
from bot.listeners.actions import apology, decision, promises, reporter

if TYPE_CHECKING:
    from bot.app import Runtime


def register(app: App, runtime: Runtime) -> None:
    app.action(Action.APPROVE)(decision.approve_handler(runtime, will_attend=False))
    app.action(Action.APPROVE_JOIN)(decision.approve_handler(runtime, will_attend=True))
    app.action(Action.REQUEST_CHANGES)(decision.request_changes_handler(runtime))
    app.action(Action.WITHDRAW)(reporter.withdraw_handler(runtime))
    app.action(Action.EDIT_REPORT)(reporter.edit_handler(runtime))
    app.action(Action.DRAFT_LETTER)(apology.draft_handler(runtime, "letter"))
    app.action(Action.DRAFT_MEMORANDUM)(apology.draft_handler(runtime, "memorandum"))
    app.action(Action.LETTER_LANGUAGE)(apology.language_handler(runtime))
    app.action(Action.APOLOGY_DONE)(apology.apology_handler(runtime))
    app.action(Action.PREVENTION_PLAN)(apology.plan_handler(runtime))
    app.action(Action.CLOSE_CASE)(apology.close_handler(runtime))
    app.action(Action.EXPORT_CASE)(apology.export_handler(runtime))
    app.action(Action.MEASURE_DONE)(apology.measure_done_handler(runtime))
    app.action(Action.PROMISE_KEEP)(promises.keep_handler(runtime))
    app.action(Action.PROMISE_KEEP_NEXT)(promises.next_handler(runtime))
    app.action(Action.PROMISE_MOVE)(promises.move_handler(runtime))
    app.action(Action.PROMISE_CANCEL)(promises.cancel_handler(runtime))
    app.action(Action.PROMISE_ADD)(promises.add_handler(runtime))
    app.action(Action.REASSIGN)(promises.reassign_handler(runtime))

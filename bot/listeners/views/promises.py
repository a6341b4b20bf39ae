"""Submissions of the promise modals (add, next contact, move) and of "another manager"."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack

from bot import workflow
from bot.i18n import t
from bot.ids import Block
from bot.listeners.payload import case_ref, metadata, state_value, user_id
from bot.types import utcnow

if TYPE_CHECKING:
    from bot.app import Runtime

# Whether the chosen manager is a bot or deactivated: a recent answer is enough.
MANAGER_CHECK_MAX_AGE = timedelta(minutes=10)

Verb = Callable[..., workflow.Outcome]


def _submit(
    runtime: Runtime, ack: Ack, body: dict[str, Any], view: dict[str, Any], verb: Verb
) -> None:
    """Run `verb(session, actor, due, meta, now)`; refusals become errors on the modal."""
    actor = user_id(body)
    locale = runtime.profiles.get(actor).locale
    meta = metadata(view)
    due = state_value(view, Block.PROMISE_DUE)
    picking = bool(meta.get("pick"))
    if picking and not state_value(view, Block.PROMISE_CASE):
        ack(response_action="errors", errors={Block.PROMISE_CASE: t(locale, "error.required")})
        return
    try:
        with runtime.db.session() as s:
            outcome = verb(s, actor, due, meta, view, utcnow())
    except workflow.Refused as refused:
        block = Block.PROMISE_DUE
        if picking and not refused.key.startswith("error."):
            block = Block.PROMISE_CASE
        ack(response_action="errors", errors={block: t(locale, refused.key, **refused.params)})
        return
    ack()
    runtime.deliveries.dispatch(outcome.due())


def _int(value: Any, key: str) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        raise workflow.Refused(key) from None


def add_handler(runtime: Runtime) -> Callable[..., None]:
    timings = workflow.Timings.from_settings(runtime.settings)

    def add(s: Any, actor: str, due: Any, meta: dict[str, Any], view: dict[str, Any], now: Any):
        chosen = state_value(view, Block.PROMISE_CASE) if meta.get("pick") else meta.get("case")
        return workflow.add_promise(
            s,
            incident_id=_int(chosen, "refused.no_case"),
            actor=actor,
            due_at=due,
            now=now,
            timings=timings,
        )

    def handle_add(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        _submit(runtime, ack, body, view, add)

    return handle_add


def next_handler(runtime: Runtime) -> Callable[..., None]:
    timings = workflow.Timings.from_settings(runtime.settings)

    def keep_next(s: Any, actor: str, due: Any, meta: dict[str, Any], _v: Any, now: Any):
        return workflow.keep_and_promise_next(
            s,
            promise_id=_int(meta.get("promise"), "refused.no_promise"),
            actor=actor,
            next_due=due,
            now=now,
            timings=timings,
        )

    def handle_next(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        _submit(runtime, ack, body, view, keep_next)

    return handle_next


def move_handler(runtime: Runtime) -> Callable[..., None]:
    timings = workflow.Timings.from_settings(runtime.settings)

    def move(s: Any, actor: str, due: Any, meta: dict[str, Any], _v: Any, now: Any):
        return workflow.move_promise(
            s,
            promise_id=_int(meta.get("promise"), "refused.no_promise"),
            actor=actor,
            due_at=due,
            now=now,
            timings=timings,
        )

    def handle_move(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        _submit(runtime, ack, body, view, move)

    return handle_move


def reassign_handler(runtime: Runtime) -> Callable[..., None]:
    timings = workflow.Timings.from_settings(runtime.settings)

    def handle_reassign(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        actor = user_id(body)
        locale = runtime.profiles.get(actor).locale
        chosen = str(state_value(view, Block.NEW_MANAGER) or "")
        if not chosen:
            ack(response_action="errors", errors={Block.NEW_MANAGER: t(locale, "error.required")})
            return
        ref = case_ref(metadata(view).get("case"))
        try:
            if ref is None:
                raise workflow.Refused("refused.no_case")
            facts = workflow.ManagerFacts(chosen)
            if chosen != actor:
                p = runtime.profiles.get(chosen, max_age=MANAGER_CHECK_MAX_AGE)
                facts = workflow.ManagerFacts(p.user_id, p.found, p.is_bot, p.deleted)
            with runtime.db.session() as s:
                outcome = workflow.reassign_manager(
                    s,
                    incident_id=ref[0],
                    version=ref[1],
                    actor=actor,
                    manager=facts,
                    now=utcnow(),
                    timings=timings,
                )
        except workflow.Refused as refused:
            msg = t(locale, refused.key, **refused.params)
            ack(response_action="errors", errors={Block.NEW_MANAGER: msg})
            return
        ack()
        runtime.deliveries.dispatch(outcome.due())

    return handle_reassign

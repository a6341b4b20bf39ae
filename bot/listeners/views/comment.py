"""Submissions of the small comment modals: request changes (manager), withdraw (reporter)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack

from bot import workflow
from bot.i18n import t
from bot.ids import Block
from bot.listeners.payload import case_ref, metadata, text_value, user_id
from bot.models import DecisionOutcome
from bot.types import utcnow

if TYPE_CHECKING:
    from bot.app import Runtime


def request_changes_handler(runtime: Runtime) -> Callable[..., None]:
    def handle_request_changes(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        actor = user_id(body)
        locale = runtime.profiles.get(actor).locale
        comment = text_value(view, Block.COMMENT)
        if not comment.strip():
            ack(response_action="errors", errors={Block.COMMENT: t(locale, "error.required")})
            return
        ref = case_ref(metadata(view).get("case"))
        try:
            if ref is None:
                raise workflow.Refused("refused.no_case")
            with runtime.db.session() as s:
                outcome = workflow.decide(
                    s,
                    incident_id=ref[0],
                    version=ref[1],
                    actor=actor,
                    outcome=DecisionOutcome.CHANGES_REQUESTED,
                    comment=comment,
                    now=utcnow(),
                )
        except workflow.Refused as refused:
            msg = t(locale, refused.key, **refused.params)
            ack(response_action="errors", errors={Block.COMMENT: msg})
            return
        ack()
        runtime.deliveries.dispatch(outcome.due())

    return handle_request_changes


def withdraw_handler(runtime: Runtime) -> Callable[..., None]:
    def handle_withdraw(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        actor = user_id(body)
        locale = runtime.profiles.get(actor).locale
        reason = text_value(view, Block.REASON)
        if not reason.strip():
            ack(response_action="errors", errors={Block.REASON: t(locale, "error.required")})
            return
        ref = case_ref(metadata(view).get("case"))
        try:
            if ref is None:
                raise workflow.Refused("refused.no_case")
            with runtime.db.session() as s:
                outcome = workflow.withdraw(
                    s, incident_id=ref[0], actor=actor, reason=reason, now=utcnow()
                )
        except workflow.Refused as refused:
            ack(
                response_action="errors",
                errors={Block.REASON: t(locale, refused.key, **refused.params)},
            )
            return
        ack()
        runtime.deliveries.dispatch(outcome.due())

    return handle_withdraw

"""The manager's buttons: approve, approve and join the apology, request changes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, Respond
from slack_sdk import WebClient

from bot import workflow
from bot.ids import Block, Callback
from bot.listeners.actions.refusal import refuse
from bot.listeners.payload import require_case_ref, user_id
from bot.models import DecisionOutcome
from bot.render import Renderer
from bot.types import utcnow

if TYPE_CHECKING:
    from bot.app import Runtime


def approve_handler(runtime: Runtime, will_attend: bool) -> Callable[..., None]:
    def handle_approve(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond
    ) -> None:
        ack()
        actor = user_id(body)
        try:
            ref = require_case_ref(action.get("value"))
            with runtime.db.session() as s:
                outcome = workflow.decide(
                    s,
                    incident_id=ref[0],
                    version=ref[1],
                    actor=actor,
                    outcome=DecisionOutcome.APPROVED,
                    will_attend=will_attend,
                    now=utcnow(),
                )
        except workflow.Refused as refused:
            refuse(runtime, respond, actor, refused)
            return
        runtime.deliveries.dispatch(outcome.due())

    return handle_approve


def request_changes_handler(runtime: Runtime) -> Callable[..., None]:
    def handle_request_changes(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        ack()
        actor = user_id(body)
        try:
            ref = require_case_ref(action.get("value"))
            with runtime.db.session() as s:
                incident = workflow.check_can_request_changes(
                    s, incident_id=ref[0], version=ref[1], actor=actor
                )
        except workflow.Refused as refused:
            refuse(runtime, respond, actor, refused)
            return
        profile = runtime.profiles.get(actor)
        view = Renderer(profile.locale, profile.tz).blocks(
            "comment_modal",
            callback_id=Callback.REQUEST_CHANGES,
            private_metadata=json.dumps({"case": f"{ref[0]}:{ref[1]}"}),
            prefix="request_changes",
            block_id=Block.COMMENT,
            case=incident,
        )
        client.views_open(trigger_id=body["trigger_id"], view=view)

    return handle_request_changes

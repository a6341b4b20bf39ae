"""The promise buttons on reminders and on the receipt, and "Send to another manager".

Only the reporter of the case may keep, move or cancel its promises (workflow.promises says
why); a click by anyone else is refused ephemerally and changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, Respond
from slack_sdk import WebClient

from bot import views, workflow
from bot.ids import Block, Callback
from bot.listeners.actions.refusal import refuse
from bot.listeners.payload import require_case_ref, user_id
from bot.render import Renderer
from bot.types import utcnow

if TYPE_CHECKING:
    from bot.app import Runtime


def promise_ref(value: Any) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        raise workflow.Refused("refused.no_promise") from None


def keep_handler(runtime: Runtime) -> Callable[..., None]:
    def handle_keep(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond
    ) -> None:
        ack()
        actor = user_id(body)
        try:
            promise_id = promise_ref(action.get("value"))
            with runtime.db.session() as s:
                outcome = workflow.keep_promise(s, promise_id=promise_id, actor=actor, now=utcnow())
        except workflow.Refused as refused:
            refuse(runtime, respond, actor, refused)
            return
        runtime.deliveries.dispatch(outcome.due())

    return handle_keep


def cancel_handler(runtime: Runtime) -> Callable[..., None]:
    def handle_cancel(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond
    ) -> None:
        ack()
        actor = user_id(body)
        try:
            promise_id = promise_ref(action.get("value"))
            with runtime.db.session() as s:
                outcome = workflow.cancel_promise(
                    s, promise_id=promise_id, actor=actor, now=utcnow()
                )
        except workflow.Refused as refused:
            refuse(runtime, respond, actor, refused)
            return
        runtime.deliveries.dispatch(outcome.due())

    return handle_cancel


def next_handler(runtime: Runtime) -> Callable[..., None]:
    """ "Contacted — next contact at …": a small modal, default now + 30 minutes."""

    def handle_next(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        ack()
        actor = user_id(body)
        try:
            promise_id = promise_ref(action.get("value"))
            with runtime.db.session() as s:
                promise, incident = workflow.check_promise(s, promise_id=promise_id, actor=actor)
        except workflow.Refused as refused:
            refuse(runtime, respond, actor, refused)
            return
        view = views.promise_modal(
            runtime.profiles.get(actor),
            callback_id=Callback.PROMISE_NEXT,
            mode="next",
            private_metadata=json.dumps({"promise": promise.id}),
            case=incident,
        )
        client.views_open(trigger_id=body["trigger_id"], view=view)

    return handle_next


def move_handler(runtime: Runtime) -> Callable[..., None]:
    def handle_move(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        ack()
        actor = user_id(body)
        try:
            promise_id = promise_ref(action.get("value"))
            with runtime.db.session() as s:
                promise, incident = workflow.check_promise(
                    s, promise_id=promise_id, actor=actor, pending_only=True
                )
        except workflow.Refused as refused:
            refuse(runtime, respond, actor, refused)
            return
        view = views.promise_modal(
            runtime.profiles.get(actor),
            callback_id=Callback.PROMISE_MOVE,
            mode="move",
            private_metadata=json.dumps({"promise": promise.id}),
            case=incident,
            current=promise.due_at,
            initial=promise.due_at,
        )
        client.views_open(trigger_id=body["trigger_id"], view=view)

    return handle_move


def add_handler(runtime: Runtime) -> Callable[..., None]:
    """The receipt's "Add a promise" button."""

    def handle_add(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        ack()
        actor = user_id(body)
        try:
            ref = require_case_ref(action.get("value"))
            with runtime.db.session() as s:
                incident = workflow.check_can_add(s, incident_id=ref[0], actor=actor)
        except workflow.Refused as refused:
            refuse(runtime, respond, actor, refused)
            return
        view = views.promise_modal(
            runtime.profiles.get(actor),
            callback_id=Callback.PROMISE_ADD,
            mode="add",
            private_metadata=json.dumps({"case": incident.id}),
            case=incident,
        )
        client.views_open(trigger_id=body["trigger_id"], view=view)

    return handle_add


def reassign_handler(runtime: Runtime) -> Callable[..., None]:
    """ "Send to another manager" on the reporter's nudge notice."""

    def handle_reassign(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        ack()
        actor = user_id(body)
        try:
            ref = require_case_ref(action.get("value"))
            with runtime.db.session() as s:
                incident = workflow.check_can_reassign(
                    s, incident_id=ref[0], version=ref[1], actor=actor
                )
        except workflow.Refused as refused:
            refuse(runtime, respond, actor, refused)
            return
        profile = runtime.profiles.get(actor)
        view = Renderer(profile.locale, profile.tz).blocks(
            "reassign_modal",
            callback_id=Callback.REASSIGN,
            private_metadata=json.dumps({"case": f"{ref[0]}:{ref[1]}"}),
            block_id=Block.NEW_MANAGER,
            case=incident,
        )
        client.views_open(trigger_id=body["trigger_id"], view=view)

    return handle_reassign

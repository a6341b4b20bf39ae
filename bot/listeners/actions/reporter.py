"""The reporter's buttons: withdraw the report, edit it after a change request."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, Respond
from slack_sdk import WebClient
from sqlalchemy import select

from bot import views, workflow
from bot.ids import Block, Callback
from bot.listeners.actions.refusal import refuse
from bot.listeners.payload import require_case_ref, user_id
from bot.models import ReportVersion
from bot.render import Renderer

if TYPE_CHECKING:
    from bot.app import Runtime


def withdraw_handler(runtime: Runtime) -> Callable[..., None]:
    def handle_withdraw(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        ack()
        actor = user_id(body)
        try:
            ref = require_case_ref(action.get("value"))
            with runtime.db.session() as s:
                incident = workflow.check_reporter(s, incident_id=ref[0], actor=actor)
        except workflow.Refused as refused:
            refuse(runtime, respond, actor, refused)
            return
        profile = runtime.profiles.get(actor)
        view = Renderer(profile.locale, profile.tz).blocks(
            "comment_modal",
            callback_id=Callback.WITHDRAW,
            private_metadata=json.dumps({"case": f"{ref[0]}:{ref[1]}"}),
            prefix="withdraw",
            block_id=Block.REASON,
            case=incident,
        )
        client.views_open(trigger_id=body["trigger_id"], view=view)

    return handle_withdraw


def edit_handler(runtime: Runtime) -> Callable[..., None]:
    def handle_edit(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        ack()
        actor = user_id(body)
        try:
            ref = require_case_ref(action.get("value"))
            with runtime.db.session() as s:
                incident = workflow.check_reporter(
                    s, incident_id=ref[0], actor=actor, editable=True
                )
                report = s.scalar(
                    select(ReportVersion).where(
                        ReportVersion.incident_id == incident.id,
                        ReportVersion.version == incident.current_version,
                    )
                )
                assert report is not None
                prefill = {
                    "client": report.client,
                    "severity": report.severity,
                    "noticed_at": report.noticed_at,
                    "timeline": report.timeline,
                    "client_situation": report.client_situation,
                    "countermeasure": report.countermeasure,
                    "manager": report.manager_id,
                }
        except workflow.Refused as refused:
            refuse(runtime, respond, actor, refused)
            return
        profile = runtime.profiles.get(actor)
        view = views.report_modal(
            runtime,
            profile,
            prefill=prefill,
            private_metadata=json.dumps({"incident": incident.id}),
        )
        client.views_open(trigger_id=body["trigger_id"], view=view)

    return handle_edit

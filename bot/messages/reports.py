"""Delivery kinds: how each message the bot owes someone is rendered when it is sent.

Each renderer reads the case as it is *now*, in the recipient's language and time zone, so a
message delayed by a Slack outage never carries stale text.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.deliveries import Outgoing, RenderContext, RetryLater, kind
from bot.ids import CASE_BUTTONS, Action
from bot.models import (
    OPEN_STATES,
    CaseState,
    Decision,
    DecisionOutcome,
    Delivery,
    DeliveryStatus,
    Incident,
    Promise,
    ReportVersion,
    SlackMessage,
)
from bot.render import Renderer, escape_mrkdwn
from bot.workflow.promises import next_pending

MANAGER_REPORT = "manager_report"
REPORTER_RECEIPT = "reporter_receipt"


class NotYetSent(RetryLater):
    """The message to update is still being sent: retry the update a little later."""


def button_value(incident_id: int, version: int) -> str:
    return f"{incident_id}:{version}"


def _case(s: Session, d: Delivery) -> Incident:
    incident = s.get(Incident, d.incident_id)
    assert incident is not None
    return incident


def _version(s: Session, incident: Incident, version: int) -> ReportVersion:
    row = s.scalar(
        select(ReportVersion).where(
            ReportVersion.incident_id == incident.id, ReportVersion.version == version
        )
    )
    assert row is not None
    return row


def _decision(s: Session, incident: Incident, version: int) -> Decision | None:
    return s.scalar(
        select(Decision).where(Decision.incident_id == incident.id, Decision.version == version)
    )


def _promises(s: Session, incident: Incident) -> list[Promise]:
    return list(
        s.scalars(
            select(Promise).where(Promise.incident_id == incident.id).order_by(Promise.due_at)
        )
    )


def version_status(
    s: Session, incident: Incident, version: int, viewer: str
) -> tuple[str, dict[str, Any]]:
    """The state of one version as the manager's message shows it: key + params."""
    if version < incident.current_version:
        return "status.superseded", {"current": incident.current_version}
    decision = _decision(s, incident, version)
    if decision is not None:
        if decision.outcome == DecisionOutcome.APPROVED:
            key = "status.approved_join" if decision.will_attend else "status.approved"
        else:
            key = "status.changes_requested"
        return key, {
            "manager": decision.manager_id,
            "at": decision.decided_at,
            "comment": decision.comment,
        }
    if incident.state == CaseState.WITHDRAWN:
        return "status.withdrawn", {"at": incident.closed_at}
    if incident.manager_id != viewer:
        return "status.reassigned", {"manager": incident.manager_id}
    return "status.pending", {}


def _existing_message(
    s: Session, incident: Incident, purpose: str, version: int, recipient: str, original_kind: str
) -> SlackMessage | None:
    msg = s.scalar(
        select(SlackMessage).where(
            SlackMessage.incident_id == incident.id,
            SlackMessage.purpose == purpose,
            SlackMessage.version == version,
            SlackMessage.recipient == recipient,
        )
    )
    if msg is not None:
        return msg
    in_flight = s.scalar(
        select(Delivery.id).where(
            Delivery.incident_id == incident.id,
            Delivery.kind == original_kind,
            Delivery.report_version == version,
            Delivery.recipient == recipient,
            Delivery.status.in_([DeliveryStatus.SENDING]),
        )
    )
    if in_flight is not None:
        raise NotYetSent(f"{purpose} v{version} is still being sent")
    return None


def _manager_report(
    s: Session, incident: Incident, version: int, recipient: str, ctx: RenderContext
) -> Outgoing:
    profile = ctx.profiles.get(recipient)
    r = Renderer(profile.locale, profile.tz)
    report = _version(s, incident, version)
    status_key, status = version_status(s, incident, version, recipient)
    blocks = r.blocks(
        "manager_report",
        case=incident,
        report=report,
        promises=_promises(s, incident),
        status_key=status_key,
        status=status,
        live=status_key == "status.pending",
        value=button_value(incident.id, version),
        actions={
            "approve": Action.APPROVE,
            "join": Action.APPROVE_JOIN,
            "changes": Action.REQUEST_CHANGES,
        },
    )
    text = r._(
        "manager_report.fallback", case=incident.short_id, client=escape_mrkdwn(incident.client)
    )
    return Outgoing(text=text, blocks=blocks, purpose=MANAGER_REPORT)


@kind("manager_report")
def render_manager_report(s: Session, d: Delivery, ctx: RenderContext) -> Outgoing | None:
    incident = _case(s, d)
    assert d.report_version is not None
    if incident.state == CaseState.WITHDRAWN:
        return None
    return _manager_report(s, incident, d.report_version, d.recipient, ctx)


@kind("manager_report_refresh")
def render_manager_refresh(s: Session, d: Delivery, ctx: RenderContext) -> Outgoing | None:
    incident = _case(s, d)
    version = int(d.data["version"])
    msg = _existing_message(s, incident, MANAGER_REPORT, version, d.recipient, "manager_report")
    if msg is None:
        return None  # never sent (cancelled or failed): nothing to update
    out = _manager_report(s, incident, version, d.recipient, ctx)
    out.update, out.purpose = (msg.channel, msg.ts), None
    return out


def _promise_buttons(s: Session, incident: Incident, version: int) -> dict[str, Any]:
    """The receipt's promise buttons (issue 4): add one; move or cancel the next pending one."""
    live = incident.state in OPEN_STATES and version == incident.current_version
    return {
        "promise_live": live,
        "next_promise": next_pending(s, incident.id) if live else None,
        "promise_actions": {
            "add": Action.PROMISE_ADD,
            "move": Action.PROMISE_MOVE,
            "cancel": Action.PROMISE_CANCEL,
        },
    }


def _receipt(
    s: Session, incident: Incident, version: int, recipient: str, ctx: RenderContext
) -> Outgoing:
    profile = ctx.profiles.get(recipient)
    r = Renderer(profile.locale, profile.tz)
    status_key, status = version_status(s, incident, version, incident.manager_id)
    report = _version(s, incident, version)
    blocks = r.blocks(
        "reporter_receipt",
        case=incident,
        report=report,
        promises=_promises(s, incident),
        status_key=status_key,
        status=status,
        live=incident.state in (CaseState.REPORTED, CaseState.CHANGES_REQUESTED, CaseState.APPROVED)
        and version == incident.current_version,
        withdraw_action=Action.WITHDRAW,
        **_promise_buttons(s, incident, version),
        value=button_value(incident.id, version),
    )
    text = r._("receipt.fallback", case=incident.short_id, manager=report.manager_id)
    return Outgoing(text=text, blocks=blocks, purpose=REPORTER_RECEIPT)


@kind("reporter_receipt")
def render_receipt(s: Session, d: Delivery, ctx: RenderContext) -> Outgoing | None:
    incident = _case(s, d)
    assert d.report_version is not None
    return _receipt(s, incident, d.report_version, d.recipient, ctx)


@kind("reporter_receipt_refresh")
def render_receipt_refresh(s: Session, d: Delivery, ctx: RenderContext) -> Outgoing | None:
    incident = _case(s, d)
    version = int(d.data["version"])
    msg = _existing_message(s, incident, REPORTER_RECEIPT, version, d.recipient, "reporter_receipt")
    if msg is None:
        return None
    out = _receipt(s, incident, version, d.recipient, ctx)
    out.update, out.purpose = (msg.channel, msg.ts), None
    return out


@kind("decision_notice")
def render_decision_notice(s: Session, d: Delivery, ctx: RenderContext) -> Outgoing | None:
    incident = _case(s, d)
    version = int(d.data["version"])
    decision = _decision(s, incident, version)
    if decision is None:
        return None
    profile = ctx.profiles.get(d.recipient)
    r = Renderer(profile.locale, profile.tz)
    approved = decision.outcome == DecisionOutcome.APPROVED
    blocks = r.blocks(
        "decision_notice",
        case=incident,
        decision=decision,
        approved=approved,
        editable=not approved
        and incident.state == CaseState.CHANGES_REQUESTED
        and incident.current_version == version,
        edit_action=Action.EDIT_REPORT,
        value=button_value(incident.id, version),
        case_buttons=CASE_BUTTONS if approved else (),
    )
    key = "decision.approved.fallback" if approved else "decision.changes.fallback"
    return Outgoing(
        text=r._(key, case=incident.short_id, manager=decision.manager_id), blocks=blocks
    )


@kind("withdrawn_notice")
def render_withdrawn(s: Session, d: Delivery, ctx: RenderContext) -> Outgoing | None:
    incident = _case(s, d)
    profile = ctx.profiles.get(d.recipient)
    r = Renderer(profile.locale, profile.tz)
    blocks = r.blocks("withdrawn_notice", case=incident, reason=d.data.get("reason", ""))
    return Outgoing(
        text=r._("withdrawn.fallback", case=incident.short_id, reporter=incident.reporter_id),
        blocks=blocks,
    )

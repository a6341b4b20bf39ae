"""The manager's sign-off SLA: one nudge per report version, and sending the report elsewhere.

When a version is submitted, two deliveries are written with it: `manager_sla` (the nudge to
the manager, at submitted + `manager_sla_seconds`) and `manager_nudged` (tells the reporter,
a second later, that the manager was nudged, so they can tell the client truthfully what is
happening, with a **Send to another manager** button). Both are skipped when the version was
decided, superseded (the delivery's report_version check) or sent to someone else meanwhile.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot.models import (
    AuditEvent,
    CaseState,
    Decision,
    Delivery,
    DeliveryStatus,
    Incident,
    ReportVersion,
)
from bot.workflow.common import Outcome, Refused, audit, deliver, lock_incident
from bot.workflow.promises import DEFAULT_TIMINGS, Timings, retarget_escalations

if TYPE_CHECKING:
    from bot.workflow.reports import ManagerFacts

NUDGED_DELAY = timedelta(seconds=1)  # the reporter hears of the nudge after it went out


def schedule_manager_sla(
    s: Session,
    out: Outcome,
    incident: Incident,
    version: int,
    now: datetime,
    timings: Timings = DEFAULT_TIMINGS,
    suffix: str = "",
) -> None:
    """The manager's nudge and the reporter's notice for one version (created once each)."""
    at = now + timedelta(seconds=timings.manager_sla_seconds)
    data = {"manager": incident.manager_id, "submitted": now.isoformat(), "at": at.isoformat()}
    deliver(
        s,
        out,
        "manager_sla",
        incident.manager_id,
        now,
        fire_at=at,
        incident_id=incident.id,
        report_version=version,
        dedupe_key=f"manager_sla:{incident.id}:{version}{suffix}",
        data=data,
    )
    deliver(
        s,
        out,
        "manager_nudged",
        incident.reporter_id,
        now,
        fire_at=at + NUDGED_DELAY,
        incident_id=incident.id,
        report_version=version,
        dedupe_key=f"manager_nudged:{incident.id}:{version}{suffix}",
        data=data,
    )


def awaiting_decision(s: Session, incident: Incident, version: int, manager: str) -> bool:
    """True while `manager` still owes a decision on `version` (what the nudge is about)."""
    if incident.state != CaseState.REPORTED or incident.current_version != version:
        return False
    if incident.manager_id != manager:
        return False
    decided = s.scalar(
        select(Decision.id).where(Decision.incident_id == incident.id, Decision.version == version)
    )
    return decided is None


def check_can_reassign(s: Session, *, incident_id: int, version: int, actor: str) -> Incident:
    """The checks of `reassign_manager` for opening its modal (nothing is changed)."""
    incident = s.get(Incident, incident_id)
    if incident is None:
        raise Refused("refused.no_case")
    _check(s, incident, version, actor)
    return incident


def _check(s: Session, incident: Incident, version: int, actor: str) -> None:
    if actor != incident.reporter_id:
        raise Refused("refused.not_reporter", case=incident.short_id)
    if version != incident.current_version:
        raise Refused(
            "refused.outdated",
            case=incident.short_id,
            version=version,
            current=incident.current_version,
        )
    if s.scalar(
        select(Decision.id).where(Decision.incident_id == incident.id, Decision.version == version)
    ):
        raise Refused("refused.already_decided", case=incident.short_id)
    if incident.state != CaseState.REPORTED:
        raise Refused("refused.not_open", case=incident.short_id)


def reassign_manager(
    s: Session,
    *,
    incident_id: int,
    version: int,
    actor: str,
    manager: ManagerFacts,
    now: datetime,
    timings: Timings = DEFAULT_TIMINGS,
) -> Outcome:
    """The reporter sends an undecided version to another manager.

    The new manager gets the report DM of the same version; the first one's message is
    updated in place as reassigned, and their buttons are refused from then on (`decide`
    checks both the version's and the case's manager). Choosing the manager it already went to
    (a replay) changes nothing.
    """
    incident = lock_incident(s, incident_id)
    if actor == incident.reporter_id and manager.user_id == incident.manager_id:
        return Outcome(incident, changed=False)
    _check(s, incident, version, actor)
    if manager.user_id == actor:
        raise Refused("error.manager_self")
    if not manager.found:
        raise Refused("error.manager_unknown")
    if manager.is_bot:
        raise Refused("error.manager_bot")
    if manager.deleted:
        raise Refused("error.manager_deactivated")
    report = s.scalar(
        select(ReportVersion).where(
            ReportVersion.incident_id == incident.id, ReportVersion.version == version
        )
    )
    assert report is not None
    old = incident.manager_id
    report.manager_id = manager.user_id
    incident.manager_id = manager.user_id
    incident.updated_at = now
    count = s.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.incident_id == incident.id, AuditEvent.action == "reassigned")
    )
    suffix = f":r{(count or 0) + 1}"
    s.execute(
        update(Delivery)
        .where(
            Delivery.incident_id == incident.id,
            Delivery.kind.in_(["manager_sla", "manager_nudged"]),
            Delivery.status == DeliveryStatus.PENDING,
        )
        .values(status=DeliveryStatus.CANCELLED, last_error="sent to another manager")
    )
    retarget_escalations(s, incident)
    audit(
        s,
        incident,
        actor,
        "reassigned",
        now,
        version=version,
        previous=old,
        manager=manager.user_id,
    )
    out = Outcome(incident)
    deliver(
        s,
        out,
        "manager_report",
        manager.user_id,
        now,
        incident_id=incident.id,
        report_version=version,
        dedupe_key=f"manager_report:{incident.id}:{version}{suffix}",
        notify_on_failure=incident.reporter_id,
    )
    for kind_name, recipient in (
        ("manager_report_refresh", old),
        ("reporter_receipt_refresh", incident.reporter_id),
    ):
        deliver(
            s, out, kind_name, recipient, now, incident_id=incident.id, data={"version": version}
        )
    schedule_manager_sla(s, out, incident, version, now, timings, suffix)
    s.flush()
    return out

"""Reports and sign-off: filing a case, deciding on a version, resubmitting, withdrawing.

The rules of Horenso: every state change of a case is a verb here, and only here.

No Slack imports: callers pass plain facts in (who clicked, what they typed, what Slack said
about the chosen manager) and get rows and delivery ids back. Each verb runs inside the
caller's transaction and writes, in that same transaction, the audit event and the deliveries
its decision causes (DESIGN §3) — so a decision and the messages it owes are never split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from bot.models import (
    OPEN_STATES,
    CaseState,
    Decision,
    DecisionOutcome,
    Delivery,
    DeliveryStatus,
    Incident,
    Promise,
    PromiseStatus,
    ReportVersion,
    Severity,
    TeamCounter,
    UserSetting,
)
from bot.workflow import blame
from bot.workflow.common import Outcome, Refused, audit, deliver, lock_incident
from bot.workflow.promises import (
    DEFAULT_TIMINGS,
    Timings,
    add_first_promise,
    retarget_escalations,
)
from bot.workflow.sla import schedule_manager_sla

MAX_CLIENT = 200
MAX_TEXT = 3000
MAX_COMMENT = 2000
PAST_TOLERANCE = timedelta(minutes=2)  # the picker has minute precision; clocks drift


@dataclass(frozen=True)
class ManagerFacts:
    """What Slack says about the person chosen as manager (looked up by the caller)."""

    user_id: str
    found: bool = True
    is_bot: bool = False
    deleted: bool = False


@dataclass
class ReportInput:
    client: str
    severity: str
    noticed_at: datetime | None
    timeline: str
    client_situation: str
    countermeasure: str
    manager_id: str
    next_contact: datetime | None = None
    blame_flags: list[dict[str, Any]] = field(default_factory=list)  # set by validate_report


def validate_report(
    data: ReportInput,
    reporter_id: str,
    manager: ManagerFacts | None,
    now: datetime,
    *,
    needs_contact: bool,
    blame_policy: str = blame.OFF,
) -> dict[str, tuple[str, dict[str, Any]]]:
    """Field errors by block id → (message key, params). Empty means valid.

    The blame check (workflow.blame) runs on the three fact fields under `blame_policy`:
    `block` turns a finding into a field error with a suggested rewording; `warn` accepts the
    text and records the findings in `data.blame_flags`, stored on the version.
    """
    errors: dict[str, tuple[str, dict[str, Any]]] = {}
    if not data.client.strip():
        errors["client"] = ("error.required", {})
    elif len(data.client) > MAX_CLIENT:
        errors["client"] = ("error.too_long", {"limit": MAX_CLIENT})
    if data.severity not in {s.value for s in Severity}:
        errors["severity"] = ("error.required", {})
    if data.noticed_at is None:
        errors["noticed_at"] = ("error.required", {})
    elif data.noticed_at > now + PAST_TOLERANCE:
        errors["noticed_at"] = ("error.noticed_in_future", {})
    for block in ("timeline", "client_situation", "countermeasure"):
        value: str = getattr(data, block)
        if not value.strip():
            errors[block] = ("error.required", {})
        elif len(value) > MAX_TEXT:
            errors[block] = ("error.too_long", {"limit": MAX_TEXT})
    if not data.manager_id:
        errors["manager"] = ("error.required", {})
    elif data.manager_id == reporter_id:
        errors["manager"] = ("error.manager_self", {})
    elif manager is None or not manager.found:
        errors["manager"] = ("error.manager_unknown", {})
    elif manager.is_bot:
        errors["manager"] = ("error.manager_bot", {})
    elif manager.deleted:
        errors["manager"] = ("error.manager_deactivated", {})
    if needs_contact:
        if data.next_contact is None:
            errors["next_contact"] = ("error.required", {})
        elif data.next_contact < now - PAST_TOLERANCE:
            errors["next_contact"] = ("error.contact_in_past", {})
    facts = {b: getattr(data, b) for b in ("timeline", "client_situation", "countermeasure")}
    data.blame_flags = blame.flags(facts) if blame_policy == blame.WARN else []
    if blame_policy == blame.BLOCK:
        for block, error in blame.field_errors(facts).items():
            errors.setdefault(block, error)
    return errors


def _remember_manager(s: Session, reporter_id: str, manager_id: str, now: datetime) -> None:
    row = s.get(UserSetting, reporter_id)
    if row is None:
        s.add(UserSetting(user_id=reporter_id, default_manager_id=manager_id, updated_at=now))
    else:
        row.default_manager_id = manager_id
        row.updated_at = now


def find_by_submit_key(s: Session, submit_key: str) -> Incident | None:
    incident = s.scalar(select(Incident).where(Incident.submit_key == submit_key))
    if incident is not None:
        return incident
    version = s.scalar(select(ReportVersion).where(ReportVersion.submit_key == submit_key))
    return s.get(Incident, version.incident_id) if version else None


def next_case_number(s: Session, team_id: str) -> int:
    """Atomically take the workspace's next case number (an upsert that locks one row).

    Reading max(seq)+1 races between replicas; the upsert serialises them on the counter row.
    """
    insert = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(TeamCounter).values(team_id=team_id, last_seq=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=[TeamCounter.team_id],
        set_={"last_seq": TeamCounter.last_seq + 1},
    ).returning(TeamCounter.last_seq)
    return int(s.execute(stmt).scalar_one())


def submit_report(
    s: Session,
    *,
    team_id: str,
    reporter_id: str,
    data: ReportInput,
    locale: str,
    submit_key: str,
    now: datetime,
    seq: int | None = None,
    timings: Timings = DEFAULT_TIMINGS,
) -> Outcome:
    """File a new case: report version 1, the first promise, the manager's DM, a receipt.

    Idempotent on `submit_key` (the modal's view id): a retried submission returns the case
    the first one created. `seq` is a case number reserved beforehand in its own short
    transaction (`next_case_number`), so concurrent submissions do not queue on the counter
    row for the whole of this transaction; a failed submission leaves a gap in the numbers.
    """
    existing = find_by_submit_key(s, submit_key)
    if existing is not None:
        return Outcome(existing, changed=False)
    if seq is None:
        seq = next_case_number(s, team_id)
    incident = Incident(
        team_id=team_id,
        seq=seq,
        reporter_id=reporter_id,
        manager_id=data.manager_id,
        client=data.client.strip(),
        severity=data.severity,
        state=CaseState.REPORTED,
        locale=locale,
        current_version=1,
        will_attend=False,
        submit_key=submit_key,
        created_at=now,
        updated_at=now,
    )
    s.add(incident)
    s.flush()
    s.add(_version(incident, 1, data, reporter_id, submit_key=None, now=now))
    out = Outcome(incident)
    if data.next_contact is not None:  # the promise and its reminders (workflow.promises)
        add_first_promise(s, out, incident, reporter_id, data.next_contact, now, timings)
    _remember_manager(s, reporter_id, data.manager_id, now)
    audit(s, incident, reporter_id, "submitted", now, version=1, manager=data.manager_id)
    _report_deliveries(s, out, incident, 1, now)
    schedule_manager_sla(s, out, incident, 1, now, timings)
    s.flush()
    return out


def _version(
    incident: Incident,
    number: int,
    data: ReportInput,
    actor: str,
    submit_key: str | None,
    now: datetime,
) -> ReportVersion:
    assert data.noticed_at is not None
    return ReportVersion(
        incident_id=incident.id,
        version=number,
        manager_id=data.manager_id,
        noticed_at=data.noticed_at,
        timeline=data.timeline.strip(),
        client_situation=data.client_situation.strip(),
        countermeasure=data.countermeasure.strip(),
        client=data.client.strip(),
        severity=data.severity,
        blame_flags=list(data.blame_flags),
        submit_key=submit_key,
        submitted_by=actor,
        submitted_at=now,
    )


def _report_deliveries(
    s: Session, out: Outcome, incident: Incident, version: int, now: datetime
) -> None:
    deliver(
        s,
        out,
        "manager_report",
        incident.manager_id,
        now,
        incident_id=incident.id,
        report_version=version,
        dedupe_key=f"manager_report:{incident.id}:{version}",
        notify_on_failure=incident.reporter_id,
    )
    deliver(
        s,
        out,
        "reporter_receipt",
        incident.reporter_id,
        now,
        incident_id=incident.id,
        report_version=version,
        dedupe_key=f"reporter_receipt:{incident.id}:{version}",
    )


def resubmit_report(
    s: Session,
    *,
    incident_id: int,
    actor: str,
    data: ReportInput,
    submit_key: str,
    now: datetime,
    timings: Timings = DEFAULT_TIMINGS,
) -> Outcome:
    """A new report version after the manager asked for changes (the manager may change)."""
    incident = lock_incident(s, incident_id)
    if s.scalar(select(ReportVersion).where(ReportVersion.submit_key == submit_key)):
        return Outcome(incident, changed=False)
    if actor != incident.reporter_id:
        raise Refused("refused.not_reporter", case=incident.short_id)
    if incident.state != CaseState.CHANGES_REQUESTED:
        raise Refused("refused.not_editable", case=incident.short_id)
    old = incident.current_version
    new = old + 1
    old_manager = incident.manager_id
    s.add(_version(incident, new, data, actor, submit_key=submit_key, now=now))
    incident.current_version = new
    incident.manager_id = data.manager_id
    incident.client = data.client.strip()
    incident.severity = data.severity
    incident.state = CaseState.REPORTED
    incident.updated_at = now
    _cancel_version_deliveries(s, incident.id, old, now)
    retarget_escalations(s, incident)
    _remember_manager(s, actor, data.manager_id, now)
    audit(s, incident, actor, "resubmitted", now, version=new, manager=data.manager_id)
    out = Outcome(incident)
    _refresh(s, out, incident, old, old_manager, now)
    _report_deliveries(s, out, incident, new, now)
    schedule_manager_sla(s, out, incident, new, now, timings)
    s.flush()
    return out


def _cancel_version_deliveries(s: Session, incident_id: int, version: int, now: datetime) -> None:
    """An unsent message about a superseded version must never go out with stale text."""
    s.execute(
        update(Delivery)
        .where(
            Delivery.incident_id == incident_id,
            Delivery.report_version == version,
            Delivery.status == DeliveryStatus.PENDING,
        )
        .values(status=DeliveryStatus.CANCELLED, last_error="superseded")
    )


def _refresh(
    s: Session, out: Outcome, incident: Incident, version: int, manager: str, now: datetime
) -> None:
    """Update, in place, the manager's message and the reporter's receipt of `version`."""
    deliver(
        s,
        out,
        "manager_report_refresh",
        manager,
        now,
        incident_id=incident.id,
        data={"version": version},
    )
    deliver(
        s,
        out,
        "reporter_receipt_refresh",
        incident.reporter_id,
        now,
        incident_id=incident.id,
        data={"version": version},
    )


def decide(
    s: Session,
    *,
    incident_id: int,
    version: int,
    actor: str,
    outcome: DecisionOutcome,
    now: datetime,
    will_attend: bool = False,
    comment: str = "",
) -> Outcome:
    """The manager approves a report version or asks for changes.

    Only the manager the version was sent to decides, never on an outdated version, and never
    twice: a double click or a replayed payload changes nothing the second time.
    """
    incident = lock_incident(s, incident_id)
    report = s.scalar(
        select(ReportVersion).where(
            ReportVersion.incident_id == incident.id, ReportVersion.version == version
        )
    )
    if report is None:
        raise Refused("refused.no_case")
    if actor == incident.reporter_id:
        raise Refused("refused.self_approval", case=incident.short_id)
    if actor != report.manager_id or actor != incident.manager_id:
        raise Refused("refused.not_manager", case=incident.short_id, manager=incident.manager_id)
    previous = s.scalar(
        select(Decision).where(Decision.incident_id == incident.id, Decision.version == version)
    )
    if previous is not None:
        same = previous.outcome == outcome and previous.will_attend == will_attend
        if same and previous.manager_id == actor:
            return Outcome(incident, changed=False)  # a double click or a replay
    if version != incident.current_version:
        raise Refused(
            "refused.outdated",
            case=incident.short_id,
            version=version,
            current=incident.current_version,
        )
    if previous is not None:
        raise Refused("refused.already_decided", case=incident.short_id)
    if incident.state != CaseState.REPORTED:
        raise Refused("refused.not_open", case=incident.short_id)
    comment = comment.strip()
    if outcome == DecisionOutcome.CHANGES_REQUESTED and not comment:
        raise Refused("error.required")
    s.add(
        Decision(
            incident_id=incident.id,
            version=version,
            manager_id=actor,
            outcome=outcome,
            comment=comment,
            will_attend=will_attend,
            decided_at=now,
        )
    )
    if outcome == DecisionOutcome.APPROVED:
        incident.state = CaseState.APPROVED
        incident.will_attend = will_attend
        action = "approved"
    else:
        incident.state = CaseState.CHANGES_REQUESTED
        action = "changes_requested"
    incident.updated_at = now
    audit(
        s, incident, actor, action, now, version=version, will_attend=will_attend, comment=comment
    )
    out = Outcome(incident)
    _refresh(s, out, incident, version, actor, now)
    deliver(
        s,
        out,
        "decision_notice",
        incident.reporter_id,
        now,
        incident_id=incident.id,
        dedupe_key=f"decision_notice:{incident.id}:{version}",
        data={"version": version},
        notify_on_failure=actor,
    )
    s.flush()
    return out


def withdraw(s: Session, *, incident_id: int, actor: str, reason: str, now: datetime) -> Outcome:
    """The reporter withdraws an open case; the manager is told; pending messages stop."""
    incident = lock_incident(s, incident_id)
    if actor != incident.reporter_id:
        raise Refused("refused.not_reporter", case=incident.short_id)
    if incident.state == CaseState.WITHDRAWN:
        return Outcome(incident, changed=False)
    if incident.state not in OPEN_STATES:
        raise Refused("refused.not_open", case=incident.short_id)
    reason = reason.strip()
    if not reason:
        raise Refused("error.required")
    incident.state = CaseState.WITHDRAWN
    incident.closed_at = incident.updated_at = now
    s.execute(
        update(Delivery)
        .where(Delivery.incident_id == incident.id, Delivery.status == DeliveryStatus.PENDING)
        .values(status=DeliveryStatus.CANCELLED, last_error="case withdrawn")
    )
    s.execute(
        update(Promise)
        .where(Promise.incident_id == incident.id, Promise.status == PromiseStatus.PENDING)
        .values(status=PromiseStatus.CANCELLED)
    )
    audit(s, incident, actor, "withdrawn", now, version=incident.current_version, reason=reason)
    out = Outcome(incident)
    _refresh(s, out, incident, incident.current_version, incident.manager_id, now)
    deliver(
        s,
        out,
        "withdrawn_notice",
        incident.manager_id,
        now,
        incident_id=incident.id,
        dedupe_key=f"withdrawn_notice:{incident.id}",
        data={"reason": reason},
    )
    s.flush()
    return out


def check_can_request_changes(
    s: Session, *, incident_id: int, version: int, actor: str
) -> Incident:
    """The checks of `decide` for opening the comment modal (nothing is changed)."""
    incident = s.get(Incident, incident_id)
    if incident is None:
        raise Refused("refused.no_case")
    report = s.scalar(
        select(ReportVersion).where(
            ReportVersion.incident_id == incident.id, ReportVersion.version == version
        )
    )
    if report is None:
        raise Refused("refused.no_case")
    if actor == incident.reporter_id:
        raise Refused("refused.self_approval", case=incident.short_id)
    if actor != report.manager_id or actor != incident.manager_id:
        raise Refused("refused.not_manager", case=incident.short_id, manager=incident.manager_id)
    if version != incident.current_version:
        raise Refused(
            "refused.outdated",
            case=incident.short_id,
            version=version,
            current=incident.current_version,
        )
    if s.scalar(
        select(Decision).where(Decision.incident_id == incident.id, Decision.version == version)
    ):
        raise Refused("refused.already_decided", case=incident.short_id)
    if incident.state != CaseState.REPORTED:
        raise Refused("refused.not_open", case=incident.short_id)
    return incident


def check_reporter(s: Session, *, incident_id: int, actor: str, editable: bool = False) -> Incident:
    """The reporter (and only they) may edit or withdraw their case."""
    incident = s.get(Incident, incident_id)
    if incident is None:
        raise Refused("refused.no_case")
    if actor != incident.reporter_id:
        raise Refused("refused.not_reporter", case=incident.short_id)
    if editable and incident.state != CaseState.CHANGES_REQUESTED:
        raise Refused("refused.not_editable", case=incident.short_id)
    if not editable and incident.state not in OPEN_STATES:
        raise Refused("refused.not_open", case=incident.short_id)
    return incident

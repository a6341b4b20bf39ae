"""The apology phase, only after sign-off: drafts, the apology log, the prevention plan, closing.

The gate lives here, not in the buttons: every apology action on a case that the manager has
not approved is refused with `refused.awaiting_signoff`, naming the manager being waited on —
whether the click came from a real button or a forged payload.

Who may do what: the reporter drafts letters and memoranda; the reporter or the manager logs
the apology, writes the prevention plan and closes the case; a measure's owner (or either of
them) marks it done; only the reporter and the manager export the case. Measures' reminders
(`measure_due`) belong to the measures and outlive the case's closing (DESIGN §1).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot.models import (
    Apology,
    AuditEvent,
    CaseState,
    Decision,
    DecisionOutcome,
    Delivery,
    DeliveryStatus,
    Incident,
    LetterDraft,
    MeasureStatus,
    PreventionMeasure,
    PreventionPlan,
    Promise,
    ReportVersion,
)
from bot.workflow.common import Outcome, Refused, audit, deliver, lock_incident
from bot.workflow.promises import cancel_case_promises

METHODS = ("visit", "phone", "video", "email")
LETTER_KINDS = ("letter", "memorandum")
SECTIONS = ("opening", "apology", "facts", "measures", "closing")
MAX_SECTION = 3000
MAX_TEXT = 3000
MAX_ATTENDEES = 20
PAST_TOLERANCE = timedelta(minutes=2)
EXPORT_DEBOUNCE = timedelta(seconds=10)

REPORTER = "reporter"
MANAGER = "manager"


# -- the gate ------------------------------------------------------------------------------------


def _case(s: Session, incident_id: int, lock: bool = False) -> Incident:
    if lock:
        return lock_incident(s, incident_id)
    incident = s.get(Incident, incident_id)
    if incident is None:
        raise Refused("refused.no_case")
    return incident


def _authorise(incident: Incident, actor: str, roles: tuple[str, ...]) -> None:
    if REPORTER in roles and actor == incident.reporter_id:
        return
    if MANAGER in roles and actor == incident.manager_id:
        return
    if roles == (REPORTER,):
        raise Refused("refused.not_reporter", case=incident.short_id)
    raise Refused(
        "refused.not_involved",
        case=incident.short_id,
        reporter=incident.reporter_id,
        manager=incident.manager_id,
    )


def gate(incident: Incident, actor: str, *, closed_ok: bool = False) -> None:
    """Apology actions wait for the manager's sign-off; say why and who is being waited on."""
    if incident.state in (CaseState.REPORTED, CaseState.CHANGES_REQUESTED):
        if actor == incident.manager_id:
            raise Refused("refused.awaiting_your_signoff", case=incident.short_id)
        raise Refused(
            "refused.awaiting_signoff", case=incident.short_id, manager=incident.manager_id
        )
    if incident.state == CaseState.WITHDRAWN:
        raise Refused("refused.not_open", case=incident.short_id)
    if incident.state == CaseState.CLOSED and not closed_ok:
        raise Refused("refused.case_closed", case=incident.short_id)


def check_draft(s: Session, *, incident_id: int, actor: str) -> Incident:
    """The reporter may draft a letter or memorandum once the case is approved."""
    incident = _case(s, incident_id)
    _authorise(incident, actor, (REPORTER,))
    gate(incident, actor)
    return incident


def check_apology(s: Session, *, incident_id: int, actor: str) -> Incident:
    """The reporter or the manager may log the apology, once, after approval."""
    incident = _case(s, incident_id)
    _authorise(incident, actor, (REPORTER, MANAGER))
    gate(incident, actor)
    if incident.state == CaseState.APOLOGISED:
        raise Refused("refused.already_apologised", case=incident.short_id)
    return incident


def check_plan(s: Session, *, incident_id: int, actor: str) -> Incident:
    """The reporter or the manager may write the plan from approval until the case closes."""
    incident = _case(s, incident_id)
    _authorise(incident, actor, (REPORTER, MANAGER))
    gate(incident, actor)
    return incident


def check_export(s: Session, *, incident_id: int, actor: str) -> Incident:
    """Only the reporter and the manager may export a case (in any state)."""
    incident = _case(s, incident_id)
    _authorise(incident, actor, (REPORTER, MANAGER))
    return incident


# -- reading a case for letters and exports ---------------------------------------------------


def current_report(s: Session, incident: Incident) -> ReportVersion:
    report = s.scalar(
        select(ReportVersion).where(
            ReportVersion.incident_id == incident.id,
            ReportVersion.version == incident.current_version,
        )
    )
    if report is None:
        raise Refused("refused.no_case")
    return report


def plan_of(s: Session, incident_id: int) -> tuple[PreventionPlan | None, list[PreventionMeasure]]:
    plan = s.scalar(select(PreventionPlan).where(PreventionPlan.incident_id == incident_id))
    if plan is None:
        return None, []
    measures = list(
        s.scalars(
            select(PreventionMeasure)
            .where(PreventionMeasure.plan_id == plan.id)
            .order_by(PreventionMeasure.position)
        )
    )
    return plan, measures


def apology_of(s: Session, incident_id: int) -> Apology | None:
    return s.scalar(
        select(Apology).where(Apology.incident_id == incident_id).order_by(Apology.id.desc())
    )


@dataclass
class CaseFacts:
    """Everything letters, memoranda and exports are written from."""

    incident: Incident
    report: ReportVersion
    approval: Decision | None
    plan: PreventionPlan | None
    measures: list[PreventionMeasure]
    apology: Apology | None


def case_facts(s: Session, incident: Incident) -> CaseFacts:
    plan, measures = plan_of(s, incident.id)
    approval = s.scalar(
        select(Decision)
        .where(Decision.incident_id == incident.id, Decision.outcome == DecisionOutcome.APPROVED)
        .order_by(Decision.version.desc())
    )
    return CaseFacts(
        incident, current_report(s, incident), approval, plan, measures, apology_of(s, incident.id)
    )


# -- letters and memoranda --------------------------------------------------------------------


def validate_sections(sections: dict[str, str]) -> dict[str, tuple[str, dict[str, Any]]]:
    errors: dict[str, tuple[str, dict[str, Any]]] = {}
    for name in SECTIONS:
        value = sections.get(name, "")
        if not value.strip():
            errors[name] = ("error.required", {})
        elif len(value) > MAX_SECTION:
            errors[name] = ("error.too_long", {"limit": MAX_SECTION})
    return errors


def assemble(sections: dict[str, str]) -> str:
    """The letter as one text: its sections in order, a blank line apart."""
    return "\n\n".join(sections[name].strip("\n") for name in SECTIONS) + "\n"


def save_letter(
    s: Session,
    *,
    incident_id: int,
    actor: str,
    kind: str,
    language: str,
    sections: dict[str, str],
    blame_flags: list[dict[str, Any]],
    submit_key: str,
    now: datetime,
) -> tuple[Outcome, LetterDraft]:
    """Store a new version of a letter or memorandum; upload it to both DMs (deliveries).

    Idempotent on `submit_key` (the modal's view id): a retried submission returns the draft
    the first one stored.
    """
    existing = s.scalar(select(LetterDraft).where(LetterDraft.submit_key == submit_key))
    if existing is not None:
        return Outcome(_case(s, existing.incident_id), changed=False), existing
    if kind not in LETTER_KINDS:
        raise Refused("refused.no_case")
    incident = _case(s, incident_id, lock=True)
    _authorise(incident, actor, (REPORTER,))
    gate(incident, actor)
    if validate_sections(sections):
        raise Refused("error.required")
    last = s.scalar(
        select(func.max(LetterDraft.version)).where(
            LetterDraft.incident_id == incident.id, LetterDraft.kind == kind
        )
    )
    draft = LetterDraft(
        incident_id=incident.id,
        kind=kind,
        language=language,
        version=(last or 0) + 1,
        sections={name: sections[name] for name in SECTIONS},
        text=assemble(sections),
        blame_flags=blame_flags,
        file_ids=[],
        submit_key=submit_key,
        created_by=actor,
        created_at=now,
    )
    s.add(draft)
    s.flush()
    audit(
        s,
        incident,
        actor,
        f"{kind}_saved",
        now,
        version=incident.current_version,
        draft=draft.version,
        language=language,
        blame_flags=len(blame_flags),
    )
    out = Outcome(incident)
    for recipient in (incident.reporter_id, incident.manager_id):
        deliver(
            s,
            out,
            "letter_file",
            recipient,
            now,
            incident_id=incident.id,
            dedupe_key=f"letter_file:{draft.id}:{recipient}",
            data={"draft_id": draft.id},
            notify_on_failure=actor,
        )
    s.flush()
    return out, draft


# -- the apology ------------------------------------------------------------------------------


@dataclass
class ApologyInput:
    method: str
    done_at: datetime | None
    attendees: list[str]
    client_reaction: str


def validate_apology(data: ApologyInput, now: datetime) -> dict[str, tuple[str, dict[str, Any]]]:
    errors: dict[str, tuple[str, dict[str, Any]]] = {}
    if data.method not in METHODS:
        errors["apology_method"] = ("error.required", {})
    if data.done_at is None:
        errors["apology_at"] = ("error.required", {})
    elif data.done_at > now + PAST_TOLERANCE:
        errors["apology_at"] = ("error.apology_in_future", {})
    if not data.attendees:
        errors["attendees"] = ("error.required", {})
    elif len(data.attendees) > MAX_ATTENDEES:
        errors["attendees"] = ("error.too_many", {"limit": MAX_ATTENDEES})
    if not data.client_reaction.strip():
        errors["client_reaction"] = ("error.required", {})
    elif len(data.client_reaction) > MAX_TEXT:
        errors["client_reaction"] = ("error.too_long", {"limit": MAX_TEXT})
    return errors


def log_apology(
    s: Session, *, incident_id: int, actor: str, data: ApologyInput, now: datetime
) -> Outcome:
    """Record the apology (when, how, who, the client's reaction): APPROVED → APOLOGISED.

    The manager is told (or the reporter, when the manager logged it). A retried submission
    of the same apology changes nothing the second time.
    """
    incident = _case(s, incident_id, lock=True)
    _authorise(incident, actor, (REPORTER, MANAGER))
    gate(incident, actor)
    if incident.state == CaseState.APOLOGISED:
        previous = apology_of(s, incident.id)
        if (
            previous is not None
            and previous.logged_by == actor
            and previous.method == data.method
            and previous.done_at == data.done_at
        ):
            return Outcome(incident, changed=False)
        raise Refused("refused.already_apologised", case=incident.short_id)
    if validate_apology(data, now):
        raise Refused("error.required")
    assert data.done_at is not None
    attendees = list(dict.fromkeys(data.attendees))
    s.add(
        Apology(
            incident_id=incident.id,
            method=data.method,
            done_at=data.done_at,
            attendees=attendees,
            client_reaction=data.client_reaction.strip(),
            logged_by=actor,
            created_at=now,
        )
    )
    incident.state = CaseState.APOLOGISED
    incident.apologised_at = data.done_at
    incident.updated_at = now
    audit(
        s,
        incident,
        actor,
        "apologised",
        now,
        version=incident.current_version,
        method=data.method,
        attendees=attendees,
    )
    out = Outcome(incident)
    told = incident.manager_id if actor != incident.manager_id else incident.reporter_id
    deliver(
        s,
        out,
        "apology_logged",
        told,
        now,
        incident_id=incident.id,
        dedupe_key=f"apology_logged:{incident.id}",
        notify_on_failure=actor,
    )
    s.flush()
    return out


# -- the prevention plan ----------------------------------------------------------------------


@dataclass
class MeasureInput:
    description: str
    owner_id: str
    due_at: datetime | None


def _same(measure: PreventionMeasure, data: MeasureInput) -> bool:
    return (
        measure.description == data.description.strip()
        and measure.owner_id == data.owner_id
        and measure.due_at == data.due_at
    )


def validate_plan(
    root_cause: str,
    slots: list[MeasureInput | None],
    now: datetime,
    existing: list[PreventionMeasure] | None = None,
) -> dict[str, tuple[str, dict[str, Any]]]:
    """Field errors by block id. `slots` holds the modal's measure rows (None = left empty).

    A due date in the past is refused only for a new or changed measure, so an overdue
    measure kept as it was does not block editing the rest of the plan.
    """
    errors: dict[str, tuple[str, dict[str, Any]]] = {}
    if not root_cause.strip():
        errors["root_cause"] = ("error.required", {})
    elif len(root_cause) > MAX_TEXT:
        errors["root_cause"] = ("error.too_long", {"limit": MAX_TEXT})
    existing = existing or []
    filled = 0
    for n, slot in enumerate(slots, start=1):
        if slot is None:
            continue
        filled += 1
        if not slot.description.strip():
            errors[f"measure_{n}_what"] = ("error.measure_incomplete", {})
        elif len(slot.description) > MAX_TEXT:
            errors[f"measure_{n}_what"] = ("error.too_long", {"limit": MAX_TEXT})
        if not slot.owner_id:
            errors[f"measure_{n}_owner"] = ("error.measure_incomplete", {})
        if slot.due_at is None:
            errors[f"measure_{n}_due"] = ("error.measure_incomplete", {})
        else:
            index = filled - 1  # measures are stored without the modal's empty rows
            unchanged = index < len(existing) and _same(existing[index], slot)
            if not unchanged and slot.due_at < now - PAST_TOLERANCE:
                errors[f"measure_{n}_due"] = ("error.due_in_past", {})
    if filled == 0:
        errors["measure_1_what"] = ("error.measure_required", {})
    return errors


def _cancel_measure_reminders(s: Session, measure_id: int, reason: str) -> None:
    s.execute(
        update(Delivery)
        .where(
            Delivery.kind == "measure_due",
            Delivery.dedupe_key.like(f"measure_due:{measure_id}:%"),
            Delivery.status == DeliveryStatus.PENDING,
        )
        .values(status=DeliveryStatus.CANCELLED, last_error=reason)
    )


def _remind(
    s: Session,
    out: Outcome,
    incident: Incident,
    measure: PreventionMeasure,
    revision: int,
    now: datetime,
) -> None:
    deliver(
        s,
        out,
        "measure_due",
        measure.owner_id,
        now,
        fire_at=measure.due_at,
        incident_id=incident.id,
        dedupe_key=f"measure_due:{measure.id}:{revision}",
        data={"measure_id": measure.id},
    )


def save_plan(
    s: Session,
    *,
    incident_id: int,
    actor: str,
    root_cause: str,
    measures: list[MeasureInput],
    now: datetime,
) -> Outcome:
    """Create or edit the plan. Each new or changed measure gets a fresh `measure_due`
    reminder to its owner; a removed or changed one loses its old reminder. Saving the same
    plan again (a retried submission) changes nothing.
    """
    incident = _case(s, incident_id, lock=True)
    _authorise(incident, actor, (REPORTER, MANAGER))
    gate(incident, actor)
    plan, existing = plan_of(s, incident.id)
    slots: list[MeasureInput | None] = list(measures)
    if validate_plan(root_cause, slots, now, existing):
        raise Refused("error.required")
    root_cause = root_cause.strip()
    out = Outcome(incident)
    if (
        plan is not None
        and plan.root_cause == root_cause
        and len(existing) == len(measures)
        and all(_same(m, d) for m, d in zip(existing, measures, strict=True))
    ):
        out.changed = False
        return out
    if plan is None:
        plan = PreventionPlan(
            incident_id=incident.id,
            root_cause=root_cause,
            revision=1,
            updated_by=actor,
            created_at=now,
            updated_at=now,
        )
        s.add(plan)
        s.flush()
    else:
        plan.root_cause = root_cause
        plan.revision += 1
        plan.updated_by = actor
        plan.updated_at = now
    for position, data in enumerate(measures):
        if position < len(existing):
            measure = existing[position]
            if _same(measure, data):
                continue
            _cancel_measure_reminders(s, measure.id, "measure changed")
            measure.description = data.description.strip()
            measure.owner_id = data.owner_id
            assert data.due_at is not None
            measure.due_at = data.due_at
            measure.status = MeasureStatus.OPEN
            measure.done_at = measure.done_by = None
        else:
            assert data.due_at is not None
            measure = PreventionMeasure(
                plan_id=plan.id,
                incident_id=incident.id,
                position=position,
                description=data.description.strip(),
                owner_id=data.owner_id,
                due_at=data.due_at,
                status=MeasureStatus.OPEN,
                created_at=now,
            )
            s.add(measure)
        s.flush()
        _remind(s, out, incident, measure, plan.revision, now)
    for measure in existing[len(measures) :]:
        _cancel_measure_reminders(s, measure.id, "measure removed")
        s.delete(measure)
    audit(
        s,
        incident,
        actor,
        "plan_saved",
        now,
        version=incident.current_version,
        revision=plan.revision,
        measures=len(measures),
    )
    s.flush()
    return out


def mark_measure_done(s: Session, *, measure_id: int, actor: str, now: datetime) -> Outcome:
    """The owner (or the reporter or the manager) marks a measure done, also after closing."""
    measure = s.get(PreventionMeasure, measure_id)
    if measure is None:
        raise Refused("refused.no_measure")
    incident = _case(s, measure.incident_id, lock=True)
    if actor not in (measure.owner_id, incident.reporter_id, incident.manager_id):
        raise Refused("refused.not_measure_owner", case=incident.short_id, owner=measure.owner_id)
    if incident.state == CaseState.WITHDRAWN:
        raise Refused("refused.not_open", case=incident.short_id)
    if measure.status == MeasureStatus.DONE:
        return Outcome(incident, changed=False)
    measure.status = MeasureStatus.DONE
    measure.done_at = now
    measure.done_by = actor
    _cancel_measure_reminders(s, measure.id, "measure done")
    audit(s, incident, actor, "measure_done", now, measure=measure.id, position=measure.position)
    s.flush()
    return Outcome(incident)


# -- closing ----------------------------------------------------------------------------------


def close_case(s: Session, *, incident_id: int, actor: str, now: datetime) -> Outcome:
    """APOLOGISED → CLOSED; refused without a prevention plan. The manager is told (or the
    reporter, when the manager closed it). Promise reminders stop; measure reminders go on.
    """
    incident = _case(s, incident_id, lock=True)
    _authorise(incident, actor, (REPORTER, MANAGER))
    if incident.state == CaseState.CLOSED:
        return Outcome(incident, changed=False)
    gate(incident, actor)
    if incident.state != CaseState.APOLOGISED:
        raise Refused("refused.apology_first", case=incident.short_id)
    plan, measures = plan_of(s, incident.id)
    if plan is None or not measures:
        raise Refused("refused.plan_required", case=incident.short_id)
    incident.state = CaseState.CLOSED
    incident.closed_at = incident.updated_at = now
    cancel_case_promises(s, incident, now, "case closed")
    audit(s, incident, actor, "closed", now, version=incident.current_version)
    out = Outcome(incident)
    told = incident.manager_id if actor != incident.manager_id else incident.reporter_id
    deliver(
        s,
        out,
        "case_closed",
        told,
        now,
        incident_id=incident.id,
        dedupe_key=f"case_closed:{incident.id}",
        data={"by": actor},
        notify_on_failure=actor,
    )
    s.flush()
    return out


# -- export -----------------------------------------------------------------------------------


def case_people(s: Session, incident_id: int) -> set[str]:
    """Everyone an export names (so the caller can look their names up beforehand)."""
    incident = _case(s, incident_id)
    people = {incident.reporter_id, incident.manager_id}
    people |= set(s.scalars(select(AuditEvent.actor).where(AuditEvent.incident_id == incident_id)))
    people |= set(
        s.scalars(select(ReportVersion.manager_id).where(ReportVersion.incident_id == incident_id))
    )
    _plan, measures = plan_of(s, incident_id)
    people |= {m.owner_id for m in measures}
    apology = apology_of(s, incident_id)
    people |= set(apology.attendees if apology else [])
    return {p for p in people if p}


def request_export(
    s: Session,
    *,
    incident_id: int,
    actor: str,
    now: datetime,
    names: dict[str, str] | None = None,
) -> Outcome:
    """The whole case as one Markdown file in the requester's DM (rendered when sent).

    A double click (an export for the same person still on its way, or sent moments ago)
    gives one file.
    """
    incident = _case(s, incident_id, lock=True)  # serialises double clicks
    _authorise(incident, actor, (REPORTER, MANAGER))
    recent = s.scalar(
        select(Delivery.id).where(
            Delivery.incident_id == incident.id,
            Delivery.kind == "case_export",
            Delivery.recipient == actor,
            (Delivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.SENDING]))
            | (Delivery.created_at > now - EXPORT_DEBOUNCE),
        )
    )
    if recent is not None:
        return Outcome(incident, changed=False)
    audit(s, incident, actor, "exported", now, version=incident.current_version)
    out = Outcome(incident)
    deliver(
        s,
        out,
        "case_export",
        actor,
        now,
        incident_id=incident.id,
        data={"names": names or {}},
        notify_on_failure=actor,
    )
    s.flush()
    return out


def promises_of(s: Session, incident_id: int) -> list[Promise]:
    return list(
        s.scalars(
            select(Promise).where(Promise.incident_id == incident_id).order_by(Promise.due_at)
        )
    )

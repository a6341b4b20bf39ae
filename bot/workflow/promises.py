"""Promises to the client and their reminders: add, keep, keep-and-promise-next, move, cancel.

The source article's rule: tell an upset client what you are doing and when you will contact
them next, then keep that time. Every pending promise owes three deliveries (DESIGN §3):
`before` (to the reporter, `lead` ahead of the due time, or half the remaining time when the
promise is shorter than the lead), `due` (to the reporter, at the due time) and `escalate`
(to the manager, `escalation` after the due time). Their dedupe keys carry the promise's
revision, so a moved promise gets fresh reminders while a retried request creates each once.

Who may change a promise: only the reporter of the case. The promise is theirs, made to their
client in their own words; the manager is told on escalation (with what the reporter should
tell the client) and talks to the reporter, but gets no buttons that would mark the reporter's
promise kept on their behalf.

A promise whose due time passes while it is pending becomes *missed* (`mark_overdue`, run
periodically in every process by `bot.overdue`); keeping it afterwards records it as *kept late*.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.models import (
    OPEN_STATES,
    Delivery,
    DeliveryStatus,
    Incident,
    Promise,
    PromiseStatus,
)
from bot.workflow.common import Outcome, Refused, audit, deliver, lock_incident

REMINDER_KINDS = ("before", "due", "escalate")
SYSTEM = "system"  # the actor of changes nobody clicked (a promise that became missed)
PAST_TOLERANCE = timedelta(minutes=2)  # the picker has minute precision; clocks drift
MAX_AHEAD = timedelta(days=366)
NEXT_CONTACT_DELAY = timedelta(minutes=30)
CASE_REF = re.compile(r"^(?:m-|#)?(\d{1,9})$", re.IGNORECASE)


@dataclass(frozen=True)
class Timings:
    """The durations the rules need (from settings; passed in so the rules stay testable)."""

    lead_seconds: int = 300
    escalation_seconds: int = 900
    manager_sla_seconds: int = 900

    @classmethod
    def from_settings(cls, settings: Any) -> Timings:
        return cls(
            lead_seconds=settings.reminder_lead_seconds,
            escalation_seconds=settings.escalation_after_seconds,
            manager_sla_seconds=settings.manager_sla_seconds,
        )


DEFAULT_TIMINGS = Timings()


@dataclass
class PromiseOutcome(Outcome):
    """An outcome that also names the promise it concerns (the new one, after keep-and-next)."""

    promise: Promise | None = None


# -- when reminders fire -------------------------------------------------------------------------


def before_at(due_at: datetime, now: datetime, lead_seconds: int) -> datetime | None:
    """When the `before` reminder fires; None when the promise is already due."""
    remaining = due_at - now
    if remaining <= timedelta(0):
        return None
    lead = timedelta(seconds=lead_seconds)
    if remaining > lead:
        return due_at - lead
    return now + remaining / 2


def reminder_times(
    promise: Promise, now: datetime, timings: Timings
) -> dict[str, tuple[datetime, str]]:
    """kind → (fire_at, who: reporter/manager) for the reminders of a pending promise."""
    times: dict[str, tuple[datetime, str]] = {}
    before = before_at(promise.due_at, now, timings.lead_seconds)
    if before is not None:
        times["before"] = (before, "reporter")
    times["due"] = (max(promise.due_at, now), "reporter")
    escalate = promise.due_at + timedelta(seconds=timings.escalation_seconds)
    times["escalate"] = (max(escalate, now), "manager")
    return times


def suggested_next_contact(now: datetime, due_at: datetime | None = None) -> datetime:
    """The next contact time a reminder suggests: 30 minutes on, rounded up to 5 minutes."""
    base = max(now, due_at) if due_at is not None else now
    at = (base + NEXT_CONTACT_DELAY).replace(second=0, microsecond=0)
    return at + timedelta(minutes=(-at.minute) % 5)


def due_row_ids(s: Session, now: datetime, limit: int = 1000) -> list[int]:
    """Pending reminder rows that are due at `now` (what a sweep would claim)."""
    return list(
        s.scalars(
            select(Delivery.id)
            .where(
                Delivery.kind.in_(REMINDER_KINDS),
                Delivery.status == DeliveryStatus.PENDING,
                Delivery.fire_at <= now,
            )
            .order_by(Delivery.fire_at, Delivery.id)
            .limit(limit)
        )
    )


# -- internal helpers ----------------------------------------------------------------------------


def _schedule(
    s: Session, out: Outcome, incident: Incident, promise: Promise, now: datetime, timings: Timings
) -> None:
    for kind_name, (fire_at, who) in reminder_times(promise, now, timings).items():
        recipient = incident.reporter_id if who == "reporter" else incident.manager_id
        deliver(
            s,
            out,
            kind_name,
            recipient,
            now,
            fire_at=fire_at,
            incident_id=incident.id,
            promise_id=promise.id,
            dedupe_key=f"{kind_name}:{promise.id}:{promise.revision}",
            data={"at": fire_at.isoformat(), "revision": promise.revision},
        )


def _cancel_reminders(s: Session, promise_id: int, reason: str) -> None:
    s.execute(
        update(Delivery)
        .where(
            Delivery.promise_id == promise_id,
            Delivery.kind.in_(REMINDER_KINDS),
            Delivery.status == DeliveryStatus.PENDING,
        )
        .values(status=DeliveryStatus.CANCELLED, last_error=reason)
    )


def refresh_messages(
    s: Session,
    out: Outcome,
    incident: Incident,
    now: datetime,
    promise: Promise | None = None,
    reminder_kinds: tuple[str, ...] = REMINDER_KINDS,
) -> None:
    """Update in place what shows promises: the manager's report, the receipt, the reminders.

    Only messages that were (or are being) sent are refreshed: a refresh of nothing would be
    a delivery claimed and cancelled for no purpose.
    """
    version = incident.current_version
    for original, kind_name, recipient in (
        ("manager_report", "manager_report_refresh", incident.manager_id),
        ("reporter_receipt", "reporter_receipt_refresh", incident.reporter_id),
    ):
        exists = s.scalar(
            select(Delivery.id)
            .where(
                Delivery.incident_id == incident.id,
                Delivery.kind == original,
                Delivery.report_version == version,
                Delivery.recipient == recipient,
                Delivery.status.in_([DeliveryStatus.SENT, DeliveryStatus.SENDING]),
            )
            .limit(1)
        )
        if exists is not None:
            deliver(
                s,
                out,
                kind_name,
                recipient,
                now,
                incident_id=incident.id,
                data={"version": version},
            )
    if promise is None or not reminder_kinds:
        return
    sent = s.execute(
        select(Delivery.id, Delivery.recipient).where(
            Delivery.promise_id == promise.id,
            Delivery.kind.in_(reminder_kinds),
            Delivery.status.in_([DeliveryStatus.SENT, DeliveryStatus.SENDING]),
        )
    ).all()
    for row in sent:
        deliver(
            s,
            out,
            "reminder_refresh",
            row.recipient,
            now,
            incident_id=incident.id,
            promise_id=promise.id,
            data={"delivery": row.id},
        )


def _load(s: Session, promise_id: int) -> tuple[Promise, Incident]:
    """The promise and its case, the case locked so changes of one case are serialised."""
    incident_id = s.scalar(select(Promise.incident_id).where(Promise.id == promise_id))
    if incident_id is None:
        raise Refused("refused.no_promise")
    incident = lock_incident(s, incident_id)
    promise = s.get(Promise, promise_id, populate_existing=True)
    assert promise is not None
    return promise, incident


def _check_owner(incident: Incident, actor: str) -> None:
    if actor != incident.reporter_id:
        raise Refused("refused.not_reporter", case=incident.short_id)


def _check_open(incident: Incident) -> None:
    if incident.state not in OPEN_STATES:
        raise Refused("refused.not_open", case=incident.short_id)


def check_due_time(due_at: datetime | None, now: datetime) -> None:
    """A promised time is required, not in the past, and within a year."""
    if due_at is None:
        raise Refused("error.required")
    if due_at < now - PAST_TOLERANCE:
        raise Refused("error.contact_in_past")
    if due_at > now + MAX_AHEAD:
        raise Refused("error.promise_too_far")


def _new_promise(
    s: Session,
    out: Outcome,
    incident: Incident,
    actor: str,
    due_at: datetime,
    now: datetime,
    timings: Timings,
    previous_id: int | None = None,
) -> Promise:
    promise = Promise(
        incident_id=incident.id,
        text="",
        due_at=due_at,
        status=PromiseStatus.PENDING,
        created_by=actor,
        created_at=now,
        updated_at=now,
        revision=0,
        previous_id=previous_id,
        kept_late=False,
    )
    s.add(promise)
    s.flush()
    _schedule(s, out, incident, promise, now, timings)
    return promise


def _keep(s: Session, incident: Incident, promise: Promise, actor: str, now: datetime) -> None:
    promise.kept_late = promise.status == PromiseStatus.MISSED or now > promise.due_at
    promise.status = PromiseStatus.KEPT
    promise.kept_at = promise.updated_at = now
    _cancel_reminders(s, promise.id, "promise kept")
    audit(
        s,
        incident,
        actor,
        "promise_kept",
        now,
        version=incident.current_version,
        promise=promise.id,
        late=promise.kept_late,
    )


# -- verbs ---------------------------------------------------------------------------------------


def add_first_promise(
    s: Session,
    out: Outcome,
    incident: Incident,
    actor: str,
    due_at: datetime,
    now: datetime,
    timings: Timings = DEFAULT_TIMINGS,
) -> Promise:
    """The promise made in the report modal, with its reminders (part of `submit_report`)."""
    return _new_promise(s, out, incident, actor, due_at, now, timings)


def add_promise(
    s: Session,
    *,
    incident_id: int,
    actor: str,
    due_at: datetime | None,
    now: datetime,
    timings: Timings = DEFAULT_TIMINGS,
) -> PromiseOutcome:
    """The reporter promises the client another contact on an open case.

    A replay (same case, same time, still pending) returns the promise the first one made.
    """
    incident = lock_incident(s, incident_id)
    _check_owner(incident, actor)
    _check_open(incident)
    check_due_time(due_at, now)
    assert due_at is not None
    same = s.scalar(
        select(Promise).where(
            Promise.incident_id == incident.id,
            Promise.due_at == due_at,
            Promise.status == PromiseStatus.PENDING,
        )
    )
    if same is not None:
        return PromiseOutcome(incident, changed=False, promise=same)
    out = PromiseOutcome(incident)
    promise = _new_promise(s, out, incident, actor, due_at, now, timings)
    out.promise = promise
    audit(
        s,
        incident,
        actor,
        "promise_added",
        now,
        version=incident.current_version,
        promise=promise.id,
        due=due_at.isoformat(),
    )
    refresh_messages(s, out, incident, now)
    s.flush()
    return out


def keep_promise(s: Session, *, promise_id: int, actor: str, now: datetime) -> PromiseOutcome:
    """ "Contacted — case update sent": the promise is kept (late if it was already missed)."""
    promise, incident = _load(s, promise_id)
    _check_owner(incident, actor)
    if promise.status == PromiseStatus.KEPT:
        return PromiseOutcome(incident, changed=False, promise=promise)
    if promise.status == PromiseStatus.CANCELLED:
        raise Refused("refused.promise_cancelled", case=incident.short_id)
    out = PromiseOutcome(incident, promise=promise)
    _keep(s, incident, promise, actor, now)
    refresh_messages(s, out, incident, now, promise)
    s.flush()
    return out


def keep_and_promise_next(
    s: Session,
    *,
    promise_id: int,
    actor: str,
    next_due: datetime | None,
    now: datetime,
    timings: Timings = DEFAULT_TIMINGS,
) -> PromiseOutcome:
    """ "Contacted — next contact at …": keep this promise and make the next one.

    A replay finds the next promise already made from this one and changes nothing.
    """
    promise, incident = _load(s, promise_id)
    _check_owner(incident, actor)
    following = s.scalar(select(Promise).where(Promise.previous_id == promise.id))
    if promise.status == PromiseStatus.KEPT and following is not None:
        return PromiseOutcome(incident, changed=False, promise=following)
    if promise.status == PromiseStatus.CANCELLED:
        raise Refused("refused.promise_cancelled", case=incident.short_id)
    _check_open(incident)
    check_due_time(next_due, now)
    assert next_due is not None
    out = PromiseOutcome(incident)
    if promise.status != PromiseStatus.KEPT:
        _keep(s, incident, promise, actor, now)
    following = _new_promise(s, out, incident, actor, next_due, now, timings, promise.id)
    out.promise = following
    audit(
        s,
        incident,
        actor,
        "promise_added",
        now,
        version=incident.current_version,
        promise=following.id,
        previous=promise.id,
        due=next_due.isoformat(),
    )
    refresh_messages(s, out, incident, now, promise)
    s.flush()
    return out


def move_promise(
    s: Session,
    *,
    promise_id: int,
    actor: str,
    due_at: datetime | None,
    now: datetime,
    timings: Timings = DEFAULT_TIMINGS,
) -> PromiseOutcome:
    """The time was re-negotiated with the client: fresh reminders for the new time."""
    promise, incident = _load(s, promise_id)
    _check_owner(incident, actor)
    if due_at is not None and promise.due_at == due_at and promise.status == PromiseStatus.PENDING:
        return PromiseOutcome(incident, changed=False, promise=promise)  # a replay
    if promise.status != PromiseStatus.PENDING:
        raise Refused("refused.promise_not_pending", case=incident.short_id)
    _check_open(incident)
    check_due_time(due_at, now)
    assert due_at is not None
    out = PromiseOutcome(incident, promise=promise)
    old = promise.due_at
    _cancel_reminders(s, promise.id, "promise moved")
    promise.due_at = due_at
    promise.revision += 1
    promise.updated_at = now
    s.flush()
    _schedule(s, out, incident, promise, now, timings)
    audit(
        s,
        incident,
        actor,
        "promise_moved",
        now,
        version=incident.current_version,
        promise=promise.id,
        previous_due=old.isoformat(),
        due=due_at.isoformat(),
    )
    refresh_messages(s, out, incident, now, promise)
    s.flush()
    return out


def cancel_promise(s: Session, *, promise_id: int, actor: str, now: datetime) -> PromiseOutcome:
    """The promise no longer stands (agreed with the client); its reminders stop."""
    promise, incident = _load(s, promise_id)
    _check_owner(incident, actor)
    if promise.status == PromiseStatus.CANCELLED:
        return PromiseOutcome(incident, changed=False, promise=promise)
    if promise.status != PromiseStatus.PENDING:
        raise Refused("refused.promise_not_pending", case=incident.short_id)
    out = PromiseOutcome(incident, promise=promise)
    promise.status = PromiseStatus.CANCELLED
    promise.cancelled_at = promise.updated_at = now
    _cancel_reminders(s, promise.id, "promise cancelled")
    audit(
        s,
        incident,
        actor,
        "promise_cancelled",
        now,
        version=incident.current_version,
        promise=promise.id,
    )
    refresh_messages(s, out, incident, now, promise)
    s.flush()
    return out


def mark_overdue(s: Session, now: datetime, limit: int = 100) -> list[Delivery]:
    """Pending promises whose due time has passed become missed (a periodic check).

    Every replica runs it; rows another transaction holds are skipped (PostgreSQL) and the
    status condition makes a second pass a no-op. Returns the refreshes to dispatch.
    """
    promises = list(
        s.scalars(
            select(Promise)
            .where(Promise.status == PromiseStatus.PENDING, Promise.due_at <= now)
            .order_by(Promise.due_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    deliveries: list[Delivery] = []
    for promise in promises:
        incident = s.get(Incident, promise.incident_id)
        assert incident is not None
        promise.status = PromiseStatus.MISSED
        promise.missed_at = promise.updated_at = now
        audit(
            s,
            incident,
            SYSTEM,
            "promise_missed",
            now,
            version=incident.current_version,
            promise=promise.id,
        )
        out = Outcome(incident)
        # A `before` reminder loses its move/cancel buttons; `due` and `escalate` read the same.
        refresh_messages(s, out, incident, now, promise, reminder_kinds=("before",))
        deliveries += out.deliveries
    s.flush()
    return deliveries


def retarget_escalations(s: Session, incident: Incident) -> None:
    """Pending escalations go to whoever now owns the sign-off of the case."""
    s.execute(
        update(Delivery)
        .where(
            Delivery.incident_id == incident.id,
            Delivery.kind == "escalate",
            Delivery.status == DeliveryStatus.PENDING,
        )
        .values(recipient=incident.manager_id)
    )


def cancel_case_promises(s: Session, incident: Incident, now: datetime, reason: str) -> None:
    """A case that closes or is withdrawn owes no more reminders (for `close` and `withdraw`)."""
    ids = list(
        s.scalars(
            select(Promise.id).where(
                Promise.incident_id == incident.id, Promise.status == PromiseStatus.PENDING
            )
        )
    )
    for promise_id in ids:
        _cancel_reminders(s, promise_id, reason)
    if ids:
        s.execute(
            update(Promise)
            .where(Promise.id.in_(ids))
            .values(status=PromiseStatus.CANCELLED, cancelled_at=now, updated_at=now)
        )


# -- reading (nothing changes) ---------------------------------------------------------------------


def open_cases(s: Session, team_id: str, reporter_id: str, limit: int = 100) -> list[Incident]:
    """The reporter's open cases, newest first."""
    return list(
        s.scalars(
            select(Incident)
            .where(
                Incident.team_id == team_id,
                Incident.reporter_id == reporter_id,
                Incident.state.in_(OPEN_STATES),
            )
            .order_by(Incident.seq.desc())
            .limit(limit)
        )
    )


def find_case(s: Session, team_id: str, ref: str) -> Incident | None:
    """A case by its short id (`M-3`, `m-3`, `#3` or `3`) in a workspace."""
    match = CASE_REF.match(ref.strip())
    if match is None:
        return None
    return s.scalar(
        select(Incident).where(Incident.team_id == team_id, Incident.seq == int(match.group(1)))
    )


def check_can_add(s: Session, *, incident_id: int, actor: str) -> Incident:
    """The checks of `add_promise` for opening its modal (nothing is changed)."""
    incident = s.get(Incident, incident_id)
    if incident is None:
        raise Refused("refused.no_case")
    _check_owner(incident, actor)
    _check_open(incident)
    return incident


def check_promise(
    s: Session, *, promise_id: int, actor: str, pending_only: bool = False
) -> tuple[Promise, Incident]:
    """The checks of the promise verbs for opening a modal (nothing is changed)."""
    promise = s.get(Promise, promise_id)
    if promise is None:
        raise Refused("refused.no_promise")
    incident = s.get(Incident, promise.incident_id)
    assert incident is not None
    _check_owner(incident, actor)
    if promise.status == PromiseStatus.CANCELLED:
        raise Refused("refused.promise_cancelled", case=incident.short_id)
    if pending_only and promise.status != PromiseStatus.PENDING:
        raise Refused("refused.promise_not_pending", case=incident.short_id)
    _check_open(incident)
    return promise, incident


def next_pending(s: Session, incident_id: int) -> Promise | None:
    return s.scalar(
        select(Promise)
        .where(Promise.incident_id == incident_id, Promise.status == PromiseStatus.PENDING)
        .order_by(Promise.due_at, Promise.id)
        .limit(1)
    )

"""Delivery kinds of promises and the sign-off SLA: reminders, escalation, the manager's nudge.

`before` is skipped once the promise is no longer pending or already due (the `due` reminder
covers it); `due` and `escalate` are always sent — late if it must be, saying when it should
have arrived. Each reminder suggests, in the reader's language and time zone, what to tell the
client.
Renderers only read (deliveries render in a read session); a pending promise past its due time
is marked missed by the periodic check in `bot.overdue`.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import workflow
from bot.deliveries import LATE_GRACE, Outgoing, RenderContext, RetryLater, kind
from bot.ids import Action
from bot.models import (
    OPEN_STATES,
    CaseState,
    Delivery,
    DeliveryStatus,
    Incident,
    Promise,
    PromiseStatus,
)
from bot.render import Renderer, escape_mrkdwn

ACTIONABLE = (PromiseStatus.PENDING, PromiseStatus.MISSED)


def _renderer(ctx: RenderContext, user_id: str) -> Renderer:
    profile = ctx.profiles.get(user_id)
    return Renderer(profile.locale, profile.tz)


def intended_at(d: Delivery) -> datetime:
    """When the delivery was meant to arrive (a retry moves `fire_at`, not this)."""
    raw = (d.data or {}).get("at")
    return datetime.fromisoformat(raw) if isinstance(raw, str) else d.fire_at


def late_at(d: Delivery, sent_or_now: datetime) -> datetime | None:
    """The time it should have arrived at, when it is (or was) late; else None."""
    meant = intended_at(d)
    if d.late or sent_or_now - meant > LATE_GRACE:
        return meant
    return None


def say_key(incident: Incident) -> str:
    """Which suggestion fits the case's state (what the client can truthfully be told)."""
    if incident.state == CaseState.APPROVED:
        return "reminder.say.approved"
    if incident.state == CaseState.APOLOGISED:
        return "reminder.say.apologised"
    return "reminder.say.checking"


def _state_line(promise: Promise, original: Delivery) -> tuple[str | None, dict[str, Any]]:
    """What became of the promise since the reminder went out (None: still open)."""
    if promise.status == PromiseStatus.KEPT:
        key = "reminder.state.kept_late" if promise.kept_late else "reminder.state.kept"
        return key, {"at": promise.kept_at}
    if promise.status == PromiseStatus.CANCELLED:
        return "reminder.state.cancelled", {"at": promise.cancelled_at}
    if promise.revision != (original.data or {}).get("revision", promise.revision):
        return "reminder.state.moved", {"at": promise.due_at}
    return None, {}


def _reminder(
    s: Session, original: Delivery, recipient: str, ctx: RenderContext, sent_at: datetime
) -> Outgoing:
    promise = s.get(Promise, original.promise_id)
    incident = s.get(Incident, original.incident_id)
    assert promise is not None and incident is not None
    r = _renderer(ctx, recipient)
    stage = original.kind
    state_key, state = _state_line(promise, original)
    open_case = incident.state in OPEN_STATES
    actionable = (
        stage in ("before", "due")
        and state_key is None
        and open_case
        and promise.status in ACTIONABLE
    )
    if stage == "before":
        minutes = max(1, math.ceil((promise.due_at - ctx.now).total_seconds() / 60))
    else:
        minutes = max(0, math.floor((ctx.now - promise.due_at).total_seconds() / 60))
    next_at = workflow.suggested_next_contact(ctx.now, promise.due_at)
    say = r._(say_key(incident), client=escape_mrkdwn(incident.client[:200]), time=r.time(next_at))
    blocks = r.blocks(
        "reminder",
        stage=stage,
        case=incident,
        promise=promise,
        minutes=minutes,
        late_at=late_at(original, sent_at),
        say=say,
        state_key=state_key,
        state=state,
        actionable=actionable,
        can_move=actionable and stage == "before" and promise.status == PromiseStatus.PENDING,
        value=str(promise.id),
        actions={
            "keep": Action.PROMISE_KEEP,
            "next": Action.PROMISE_KEEP_NEXT,
            "move": Action.PROMISE_MOVE,
            "cancel": Action.PROMISE_CANCEL,
        },
    )
    text = r._(
        f"reminder.{stage}.fallback",
        case=incident.short_id,
        client=escape_mrkdwn(incident.client[:200]),
        time=r.time(promise.due_at),
    )
    return Outgoing(text=text, blocks=blocks)


def _promise_and_case(s: Session, d: Delivery) -> tuple[Promise, Incident]:
    promise = s.get(Promise, d.promise_id)
    incident = s.get(Incident, d.incident_id)
    assert promise is not None and incident is not None
    return promise, incident


@kind("before")
def render_before(s: Session, d: Delivery, ctx: RenderContext) -> Outgoing | None:
    promise, incident = _promise_and_case(s, d)
    if promise.status != PromiseStatus.PENDING or incident.state not in OPEN_STATES:
        return None
    if promise.due_at <= ctx.now:
        return None  # already due: the `due` reminder says it, once
    return _reminder(s, d, d.recipient, ctx, ctx.now)


@kind("due")
def render_due(s: Session, d: Delivery, ctx: RenderContext) -> Outgoing | None:
    promise, incident = _promise_and_case(s, d)
    if promise.status in (PromiseStatus.KEPT, PromiseStatus.CANCELLED):
        return None
    if incident.state not in OPEN_STATES:
        return None
    return _reminder(s, d, d.recipient, ctx, ctx.now)


@kind("escalate")
def render_escalate(s: Session, d: Delivery, ctx: RenderContext) -> Outgoing | None:
    promise, incident = _promise_and_case(s, d)
    if promise.status in (PromiseStatus.KEPT, PromiseStatus.CANCELLED):
        return None
    if incident.state not in OPEN_STATES:
        return None
    return _reminder(s, d, d.recipient, ctx, ctx.now)


@kind("reminder_refresh")
def render_reminder_refresh(s: Session, d: Delivery, ctx: RenderContext) -> Outgoing | None:
    """Update a sent reminder in place: what became of the promise, no stale buttons."""
    original = s.get(Delivery, int(d.data["delivery"]))
    if original is None:
        return None
    if original.status == DeliveryStatus.SENDING:
        raise RetryLater(f"reminder {original.id} is still being sent")
    if original.status != DeliveryStatus.SENT or not original.slack_ts:
        return None
    out = _reminder(s, original, original.recipient, ctx, original.sent_at or ctx.now)
    assert original.slack_channel is not None
    out.update = (original.slack_channel, original.slack_ts)
    return out


# -- the manager's sign-off SLA ------------------------------------------------------------------


def _sla_facts(s: Session, d: Delivery) -> tuple[Incident, int, str] | None:
    incident = s.get(Incident, d.incident_id)
    assert incident is not None and d.report_version is not None
    manager = str((d.data or {}).get("manager") or "")
    if not workflow.awaiting_decision(s, incident, d.report_version, manager):
        return None
    return incident, d.report_version, manager


def _waited_minutes(d: Delivery, now: datetime) -> int:
    raw = (d.data or {}).get("submitted")
    submitted = datetime.fromisoformat(raw) if isinstance(raw, str) else d.created_at
    return max(1, round((now - submitted) / timedelta(minutes=1)))


@kind("manager_sla")
def render_manager_sla(s: Session, d: Delivery, ctx: RenderContext) -> Outgoing | None:
    facts = _sla_facts(s, d)
    if facts is None:
        return None  # decided, superseded or sent to someone else meanwhile
    incident, version, _manager = facts
    r = _renderer(ctx, d.recipient)
    client = escape_mrkdwn(incident.client[:200])
    blocks = r.blocks(
        "manager_nudge",
        case=incident,
        version=version,
        minutes=_waited_minutes(d, ctx.now),
        late_at=late_at(d, ctx.now),
    )
    text = r._("nudge.manager.fallback", case=incident.short_id, client=client)
    return Outgoing(text=text, blocks=blocks)


@kind("manager_nudged")
def render_manager_nudged(s: Session, d: Delivery, ctx: RenderContext) -> Outgoing | None:
    """Tells the reporter the manager was nudged — only once the nudge has gone out."""
    facts = _sla_facts(s, d)
    if facts is None:
        return None
    incident, version, manager = facts
    nudge_key = (d.dedupe_key or "").replace("manager_nudged:", "manager_sla:", 1)
    nudge = s.scalar(select(Delivery.status).where(Delivery.dedupe_key == nudge_key))
    if nudge in (DeliveryStatus.PENDING, DeliveryStatus.SENDING):
        raise RetryLater("the manager's nudge has not gone out yet")
    if nudge != DeliveryStatus.SENT:
        return None
    r = _renderer(ctx, d.recipient)
    client = escape_mrkdwn(incident.client[:200])
    next_at = workflow.suggested_next_contact(ctx.now)
    blocks = r.blocks(
        "manager_nudged",
        case=incident,
        manager=manager,
        minutes=_waited_minutes(d, ctx.now),
        say=r._("reminder.say.checking", client=client, time=r.time(next_at)),
        action=Action.REASSIGN,
        value=f"{incident.id}:{version}",
    )
    text = r._("nudge.reporter.fallback", case=incident.short_id, manager=manager)
    return Outgoing(text=text, blocks=blocks)

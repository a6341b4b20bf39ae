"""The data model of DESIGN §5: cases, report versions, decisions, promises, deliveries.

No behaviour lives here (no ORM events, no signals): every change of state goes through a verb
in `bot.workflow`, so a reader finds each rule in one place.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bot.types import UTCDateTime, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Severity(StrEnum):
    MINOR = "minor"
    MAJOR = "major"
    CRITICAL = "critical"


class CaseState(StrEnum):
    REPORTED = "reported"
    CHANGES_REQUESTED = "changes_requested"
    APPROVED = "approved"
    APOLOGISED = "apologised"
    CLOSED = "closed"
    WITHDRAWN = "withdrawn"


OPEN_STATES = (
    CaseState.REPORTED,
    CaseState.CHANGES_REQUESTED,
    CaseState.APPROVED,
    CaseState.APOLOGISED,
)


class DecisionOutcome(StrEnum):
    APPROVED = "approved"
    CHANGES_REQUESTED = "changes_requested"


class PromiseStatus(StrEnum):
    PENDING = "pending"
    KEPT = "kept"
    MISSED = "missed"
    CANCELLED = "cancelled"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    CANCELLED = "cancelled"
    FAILED = "failed"


class Incident(Base):
    """A case: one reported mistake, from `/mistake` to CLOSED or WITHDRAWN."""

    __tablename__ = "incidents"
    __table_args__ = (UniqueConstraint("team_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int] = mapped_column(Integer)
    reporter_id: Mapped[str] = mapped_column(String(32), index=True)
    manager_id: Mapped[str] = mapped_column(String(32), index=True)
    client: Mapped[str] = mapped_column(String(200))
    severity: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(32), index=True)
    locale: Mapped[str] = mapped_column(String(8))
    current_version: Mapped[int] = mapped_column(Integer, default=1)
    will_attend: Mapped[bool] = mapped_column(Boolean, default=False)
    submit_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    apologised_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def short_id(self) -> str:
        return f"M-{self.seq}"


class ReportVersion(Base):
    """One submitted version of a case's facts; a manager decides on a version."""

    __tablename__ = "report_versions"
    __table_args__ = (UniqueConstraint("incident_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    manager_id: Mapped[str] = mapped_column(String(32))
    noticed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    timeline: Mapped[str] = mapped_column(Text)
    client_situation: Mapped[str] = mapped_column(Text)
    countermeasure: Mapped[str] = mapped_column(Text)
    client: Mapped[str] = mapped_column(String(200))
    severity: Mapped[str] = mapped_column(String(16))
    blame_flags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    submit_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    submitted_by: Mapped[str] = mapped_column(String(32))
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Decision(Base):
    """A manager's decision on one report version (at most one per version)."""

    __tablename__ = "decisions"
    __table_args__ = (UniqueConstraint("incident_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    manager_id: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(32))
    comment: Mapped[str] = mapped_column(Text, default="")
    will_attend: Mapped[bool] = mapped_column(Boolean, default=False)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Promise(Base):
    """A commitment to contact the client by `due_at`."""

    __tablename__ = "promises"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    text: Mapped[str] = mapped_column(Text, default="")
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default=PromiseStatus.PENDING)
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    kept_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    kept_late: Mapped[bool] = mapped_column(Boolean, default=False)
    missed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Bumped each time the promise is moved: reminder dedupe keys include it, so a moved
    # promise gets fresh reminders while a retried request still creates each one once.
    revision: Mapped[int] = mapped_column(Integer, default=0)
    previous_id: Mapped[int | None] = mapped_column(ForeignKey("promises.id"))


class Delivery(Base):
    """One message the bot owes someone (DESIGN §3): written with the decision that causes it."""

    __tablename__ = "deliveries"
    __table_args__ = (Index(None, "status", "fire_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    promise_id: Mapped[int | None] = mapped_column(ForeignKey("promises.id", ondelete="CASCADE"))
    report_version: Mapped[int | None] = mapped_column(Integer)
    recipient: Mapped[str] = mapped_column(String(32))
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    fire_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    duplicate_risk: Mapped[bool] = mapped_column(Boolean, default=False)
    slack_channel: Mapped[str | None] = mapped_column(String(32))
    slack_ts: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(Text)
    notify_on_failure: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditEvent(Base):
    """Who did what, when, to which case and version."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    actor: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(40))
    version: Mapped[int | None] = mapped_column(Integer)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SlackMessage(Base):
    """Where a message about a case was posted, so it can be updated in place later."""

    __tablename__ = "slack_messages"
    __table_args__ = (UniqueConstraint("incident_id", "purpose", "version", "recipient"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(40))
    version: Mapped[int] = mapped_column(Integer, default=0)
    recipient: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(32))
    ts: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UserSetting(Base):
    """Per-user memory: last chosen manager, locale and time zone cache, DM channel."""

    __tablename__ = "user_settings"

    user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    default_manager_id: Mapped[str | None] = mapped_column(String(32))
    locale_override: Mapped[str | None] = mapped_column(String(8))
    slack_locale: Mapped[str | None] = mapped_column(String(16))
    tz: Mapped[str | None] = mapped_column(String(64))
    real_name: Mapped[str | None] = mapped_column(String(200))
    title: Mapped[str | None] = mapped_column(String(200))
    is_bot: Mapped[bool] = mapped_column(Boolean, default=False)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    profile_fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    dm_channel: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SlackEvent(Base):
    """Events API deliveries already handled: Slack retries, so `event_id` is de-duplicated."""

    __tablename__ = "slack_events"

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TeamCounter(Base):
    """The last case number handed out per workspace (`M-42`); one row lock per new case."""

    __tablename__ = "team_counters"

    team_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)


class MeasureStatus(StrEnum):
    OPEN = "open"
    DONE = "done"


class Apology(Base):
    """The apology as it happened: when, how, who attended, how the client reacted."""

    __tablename__ = "apologies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    method: Mapped[str] = mapped_column(String(16))  # visit / phone / video / email
    done_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attendees: Mapped[list[Any]] = mapped_column(JSON, default=list)
    client_reaction: Mapped[str] = mapped_column(Text, default="")
    logged_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LetterDraft(Base):
    """One saved version of an apology letter or memorandum, section by section."""

    __tablename__ = "letter_drafts"
    __table_args__ = (UniqueConstraint("incident_id", "kind", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # letter / memorandum
    language: Mapped[str] = mapped_column(String(8))
    version: Mapped[int] = mapped_column(Integer)
    sections: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    text: Mapped[str] = mapped_column(Text)
    blame_flags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    file_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    submit_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PreventionPlan(Base):
    """The recurrence-prevention plan (再発防止策) of a case: root cause and measures."""

    __tablename__ = "prevention_plans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), unique=True
    )
    root_cause: Mapped[str] = mapped_column(Text)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    updated_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PreventionMeasure(Base):
    """One concrete measure of a plan, with an owner and a due date; outlives the case."""

    __tablename__ = "prevention_measures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_id: Mapped[int] = mapped_column(
        ForeignKey("prevention_plans.id", ondelete="CASCADE"), index=True
    )
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer, default=0)
    description: Mapped[str] = mapped_column(Text)
    owner_id: Mapped[str] = mapped_column(String(32))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default=MeasureStatus.OPEN)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done_by: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

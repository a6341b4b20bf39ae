"""What every workflow module shares: refusals, outcomes, audit events, deliveries, locks."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.deliveries import new_delivery
from bot.models import AuditEvent, Delivery, Incident


class Refused(Exception):
    """An action that is not allowed: `key` names the catalog message for the person."""

    def __init__(self, key: str, **params: Any) -> None:
        super().__init__(key)
        self.key = key
        self.params = params


@dataclass
class Outcome:
    """What a verb did: the case, whether anything changed, the deliveries to dispatch."""

    incident: Incident
    changed: bool = True
    deliveries: list[Delivery] = field(default_factory=list)

    def due(self) -> list[tuple[int, datetime]]:
        return [(d.id, d.fire_at) for d in self.deliveries]


def audit(
    s: Session,
    incident: Incident,
    actor: str,
    action: str,
    now: datetime,
    version: int | None = None,
    **data: Any,
) -> None:
    s.add(
        AuditEvent(
            incident_id=incident.id,
            actor=actor,
            action=action,
            version=version,
            data=data,
            at=now,
        )
    )


def deliver(s: Session, out: Outcome, kind: str, recipient: str, now: datetime, **kw: Any) -> None:
    delivery = new_delivery(kind, recipient, fire_at=kw.pop("fire_at", now), **kw)
    s.add(delivery)
    out.deliveries.append(delivery)


def lock_incident(s: Session, incident_id: int) -> Incident:
    """Load a case for a change, serialising concurrent changes of the same case."""
    incident = s.scalar(select(Incident).where(Incident.id == incident_id).with_for_update())
    if incident is None:
        raise Refused("refused.no_case")
    return incident

"""Helpers for promise and reminder tests: a bot with short deadlines, deliveries by kind."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select

from bot.db import Database
from bot.models import AuditEvent, Delivery, Incident, Promise
from tests.harness.botprocess import SIGNING_SECRET, BotProcess
from tests.harness.fakeslack import Call, FakeSlack
from tests.harness.flows import dm, submit
from tests.harness.slackrequests import SlackRequests, datetime_
from tests.harness.slackrequests import select as sel

# Short real deadlines: a reminder `LEAD` s before the due time, escalation `ESCALATE` s after.
LEAD = 3
ESCALATE = 2
SLA = 4
SHORT = {
    "REMINDER_LEAD_SECONDS": str(LEAD),
    "ESCALATION_AFTER_SECONDS": str(ESCALATE),
    "MANAGER_SLA_SECONDS": str(SLA),
    "DELIVERY_SWEEP_SECONDS": "0.5",
    "DELIVERY_BACKOFF_CAP_SECONDS": "1",
}


def short_bot(request: pytest.FixtureRequest, **env: str) -> Iterator[BotProcess]:
    """A bot with short deadlines; the suite's shared bot is paused meanwhile, so this bot
    alone sends (a restart test must not have another process deliver while it is down)."""
    fake: FakeSlack = request.getfixturevalue("fake_session")
    url: str = request.getfixturevalue("database_url")
    shared: BotProcess = request.getfixturevalue("bot_session")
    shared.stop()
    bot = BotProcess(fake.api_url, url, **{**SHORT, **env}).start()
    try:
        yield bot
    finally:
        bot.stop()
        shared.start()


def client_for(bot: BotProcess, fake: FakeSlack) -> SlackRequests:
    if bot.proc is None or bot.proc.poll() is not None:
        raise RuntimeError(f"the bot died:\n{bot.output()}")
    return SlackRequests(bot.url, SIGNING_SECRET, fake=fake)


def delivery_id_of(call: Call) -> int | None:
    metadata = call.params.get("metadata")
    if not isinstance(metadata, dict) or metadata.get("event_type") != "horenso_delivery":
        return None
    return (metadata.get("event_payload") or {}).get("delivery_id")


def ids_of_kind(db: Database, kind: str) -> dict[int, Delivery]:
    with db.session() as s:
        rows = list(s.scalars(select(Delivery).where(Delivery.kind == kind)))
        for r in rows:
            s.expunge(r)
    return {r.id: r for r in rows}


def posts(fake: FakeSlack, db: Database, kind: str, method: str = "chat.postMessage") -> list[Call]:
    ids = ids_of_kind(db, kind)
    return [c for c in fake.calls_to(method, ok_only=True) if delivery_id_of(c) in ids]


def wait_posts(
    fake: FakeSlack,
    db: Database,
    kind: str,
    count: int = 1,
    timeout: float = 10.0,
    predicate: Callable[[Call], bool] | None = None,
    method: str = "chat.postMessage",
) -> list[Call]:
    deadline = time.monotonic() + timeout
    while True:
        found = [c for c in posts(fake, db, kind, method) if predicate is None or predicate(c)]
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(
                f"expected {count} {kind} post(s), got {len(found)}\n{fake.summary()}"
            )
        time.sleep(0.05)


def file_case(
    slack: SlackRequests,
    fake: FakeSlack,
    db: Database,
    reporter: str,
    manager: str,
    due_in: float,
    **overrides: Any,
) -> tuple[Incident, Promise]:
    """File a case through the modal with a promise `due_in` seconds from now."""
    before = {c.id for c in _cases(db)}
    resp = submit(slack, reporter, manager, next_contact=int(time.time() + due_in), **overrides)
    assert resp.status == 200 and "errors" not in (resp.json or {}), resp.body
    (case,) = [c for c in _cases(db) if c.id not in before]
    dm(fake, reporter, lambda c: f"M-{case.seq}" in (c.params.get("text") or ""))
    return case, promises_of(db, case.id)[0]


def _cases(db: Database) -> list[Incident]:
    with db.session() as s:
        return list(s.scalars(select(Incident)))


def promises_of(db: Database, incident_id: int) -> list[Promise]:
    with db.session() as s:
        return list(
            s.scalars(
                select(Promise).where(Promise.incident_id == incident_id).order_by(Promise.id)
            )
        )


def promise(db: Database, promise_id: int) -> Promise:
    with db.session() as s:
        p = s.get(Promise, promise_id)
        assert p is not None
        s.expunge(p)
        return p


def audit_actions(db: Database, incident_id: int) -> list[str]:
    with db.session() as s:
        return list(
            s.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.incident_id == incident_id)
                .order_by(AuditEvent.id)
            )
        )


def statuses(db: Database, promise_id: int) -> dict[str, str]:
    """kind:revision → status of a promise's reminder rows."""
    with db.session() as s:
        rows = s.scalars(select(Delivery).where(Delivery.promise_id == promise_id))
        return {
            f"{r.kind}:{(r.data or {}).get('revision', '')}": r.status
            for r in rows
            if r.kind in ("before", "due", "escalate")
        }


def opened_view(fake: FakeSlack, callback_id: str, count: int = 1) -> dict[str, Any]:
    """The latest modal opened with `callback_id` (waiting for the `count`-th one)."""
    calls = fake.wait_for(
        "views.open",
        lambda c: c.ok and c.params["view"].get("callback_id") == callback_id,
        count=count,
    )
    return calls[-1].params["view"]


def submit_due(
    slack: SlackRequests,
    user: str,
    view: dict[str, Any],
    due_epoch: int | None,
    case_id: int | None = None,
    view_id: str | None = None,
) -> Any:
    values: dict[str, Any] = {"promise_due": {"value": datetime_(due_epoch)}}
    if case_id is not None:
        values["promise_case"] = {"value": sel(str(case_id))}
    return slack.view_submission(
        user,
        view["callback_id"],
        values,
        private_metadata=view["private_metadata"],
        view_id=view_id or "V" + uuid.uuid4().hex[:10].upper(),
    )

"""The delivery mechanism (DESIGN §3), driven in-process against a real database and fake Slack.

Real rows come from `bot.workflow.submit_report`; a real `DeliveryService` with a real slack_sdk
client sends them to the fake Slack Web API. Nothing of ours is mocked; time is either real (and
short) or passed in through the `now` parameters.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import StatementError

import bot.messages  # noqa: F401  (registers the delivery kinds)
from bot.app import make_client
from bot.config import Settings, load_settings
from bot.db import Database
from bot.deliveries import DeliveryService, new_delivery
from bot.models import Delivery, DeliveryStatus, Incident, SlackMessage
from bot.profiles import Profiles
from bot.types import utcnow
from bot.workflow import ReportInput, submit_report
from tests.conftest import MANAGER, REPORTER
from tests.harness.botprocess import BOT_TOKEN
from tests.harness.fakeslack import FakeSlack

TEAM = "T0001"


# -- helpers ----------------------------------------------------------------------------------


def make_settings(api_url: str, db_url: str, **env: str) -> Settings:
    return load_settings(
        {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_API_URL": api_url,
            "DATABASE_URL": db_url,
            "DELIVERY_BACKOFF_CAP_SECONDS": "0.2",
            **env,
        }
    )


def build_service(db: Database, settings: Settings) -> DeliveryService:
    client = make_client(settings)
    profiles = Profiles(db, client, settings.default_locale)
    return DeliveryService(db, client, profiles, settings)


@pytest.fixture
def make_service(db: Database, fake: FakeSlack) -> Iterator[Callable[..., DeliveryService]]:
    """Build services on the test database and fake Slack; all are shut down afterwards."""
    services: list[DeliveryService] = []

    def make(**env: str) -> DeliveryService:
        service = build_service(db, make_settings(fake.api_url, db.url, **env))
        services.append(service)
        return service

    yield make
    for service in services:
        service.shutdown()


def report_input(n: int = 0) -> ReportInput:
    now = utcnow()
    return ReportInput(
        client=f"株式会社サンプル {n}",
        severity="major",
        noticed_at=now - timedelta(minutes=10),
        timeline="10:05 請求書の金額が桁違いでした。",
        client_situation="先方の経理部長が訂正版を求めています。",
        countermeasure="本日15時までに訂正版を送付します。",
        manager_id=MANAGER,
        next_contact=now + timedelta(minutes=30),
    )


def file_report(db: Database, n: int = 0) -> tuple[int, dict[str, int]]:
    """File a case; returns (incident id, {delivery kind: delivery id})."""
    with db.session() as s:
        out = submit_report(
            s,
            team_id=TEAM,
            reporter_id=REPORTER,
            data=report_input(n),
            locale="ja",
            submit_key=f"view-{n}-{time.monotonic_ns()}",
            now=utcnow(),
        )
        # Only the immediate messages: the promise reminders and the sign-off nudge that
        # submit_report also schedules (issue 4, tested in test_reminders.py) are removed.
        now = utcnow()
        for d in out.deliveries:
            if d.fire_at > now:
                s.delete(d)
        return out.incident.id, {d.kind: d.id for d in out.deliveries if d.fire_at <= now}


def row(db: Database, delivery_id: int) -> Delivery:
    with db.session() as s:
        delivery = s.get(Delivery, delivery_id)
        assert delivery is not None
        s.expunge(delivery)
        return delivery


def delivery_id_of(call: Any) -> int | None:
    metadata = call.params.get("metadata")
    if not isinstance(metadata, dict):
        return None
    if metadata.get("event_type") != "horenso_delivery":
        return None
    return (metadata.get("event_payload") or {}).get("delivery_id")


def posts_for(fake: FakeSlack, delivery_id: int, *, ok_only: bool = True) -> list[Any]:
    return [
        c
        for c in fake.calls_to("chat.postMessage", ok_only=ok_only)
        if delivery_id_of(c) == delivery_id
    ]


def drive(service: DeliveryService, delivery_id: int, timeout: float = 10.0) -> Delivery:
    """Deliver a row whenever it is due (as the scheduler would) until it settles."""
    deadline = time.monotonic() + timeout
    while True:
        current = row(service.db, delivery_id)
        if current.status not in (DeliveryStatus.PENDING, DeliveryStatus.SENDING):
            return current
        assert time.monotonic() < deadline, f"delivery {delivery_id} still {current.status}"
        if current.status == DeliveryStatus.PENDING and current.fire_at <= utcnow():
            service.deliver(delivery_id)
        else:
            time.sleep(0.02)


# -- 1. one send, recorded --------------------------------------------------------------------


def test_deliver_sends_once_and_records(make_service, db, fake) -> None:
    service = make_service()
    incident_id, ids = file_report(db)
    report_id = ids["manager_report"]

    assert service.deliver(report_id) == DeliveryStatus.SENT

    posts = posts_for(fake, report_id, ok_only=False)
    assert len(posts) == 1 and posts[0].ok
    post = posts[0]
    assert post.params["metadata"] == {
        "event_type": "horenso_delivery",
        "event_payload": {"delivery_id": report_id},
    }
    assert post.params["channel"] == "D" + MANAGER
    assert "M-1" in post.params["text"]

    sent = row(db, report_id)
    assert sent.status == DeliveryStatus.SENT
    assert sent.attempts == 1
    assert sent.slack_ts == post.response["ts"]
    assert sent.slack_channel == post.response["channel"] == "D" + MANAGER
    assert sent.sent_at is not None and sent.last_error is None
    assert not sent.duplicate_risk and not sent.late

    with db.session() as s:
        messages = list(s.scalars(select(SlackMessage)))
    assert [(m.incident_id, m.purpose, m.version, m.recipient) for m in messages] == [
        (incident_id, "manager_report", 1, MANAGER)
    ]
    assert (messages[0].channel, messages[0].ts) == (sent.slack_channel, sent.slack_ts)

    calls_before = len(fake.calls)
    assert service.deliver(report_id) == "not-claimed"
    assert len(fake.calls) == calls_before
    assert row(db, report_id).attempts == 1

    # The receipt goes to the reporter, in its own DM.
    receipt_id = ids["reporter_receipt"]
    assert service.deliver(receipt_id) == DeliveryStatus.SENT
    assert [c.params["channel"] for c in posts_for(fake, receipt_id)] == ["D" + REPORTER]


# -- 2. claim race between threads ------------------------------------------------------------


def test_threads_racing_for_one_delivery_send_it_once(make_service, db, fake) -> None:
    service = make_service()
    _, ids = file_report(db)
    report_id = ids["manager_report"]
    barrier = threading.Barrier(8)
    results: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def racer() -> None:
        try:
            barrier.wait(timeout=10)
            status = service.deliver(report_id)
            with lock:
                results.append(status)
        except BaseException as exc:
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=racer) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=30)
    assert not errors
    assert sorted(results) == ["not-claimed"] * 7 + [DeliveryStatus.SENT]
    assert len(posts_for(fake, report_id, ok_only=False)) == 1
    final = row(db, report_id)
    assert final.status == DeliveryStatus.SENT and final.attempts == 1


# -- 3. claim race between processes ----------------------------------------------------------


def _sweeping_process(
    api_url: str, db_url: str, barrier: Any, seconds: float, worker: str
) -> None:  # pragma: no cover (runs in a child process)
    settings = make_settings(api_url, db_url)
    db = Database(db_url)
    service = build_service(db, settings)
    service.worker_id = f"{worker}:{os.getpid()}"
    barrier.wait(timeout=60)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            service.sweep()
            with db.session() as s:
                left = s.scalar(
                    select(func.count())
                    .select_from(Delivery)
                    .where(Delivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.SENDING]))
                )
            if not left:
                break
            time.sleep(0.02)
    finally:
        service.shutdown()
        db.dispose()


def test_processes_racing_for_deliveries_send_each_once(db, fake) -> None:
    ids: list[int] = []
    for n in range(25):
        ids += file_report(db, n)[1].values()
    assert len(ids) == 50

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(3)
    procs = [
        ctx.Process(
            target=_sweeping_process,
            args=(fake.api_url, db.url, barrier, 15.0, f"proc{i}"),
            daemon=True,
        )
        for i in range(3)
    ]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join(timeout=60)
        assert [p.exitcode for p in procs] == [0, 0, 0]
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join(5)

    per_delivery: dict[int, int] = {}
    for call in fake.calls_to("chat.postMessage", ok_only=True):
        delivery_id = delivery_id_of(call)
        if delivery_id is not None:
            per_delivery[delivery_id] = per_delivery.get(delivery_id, 0) + 1
    assert per_delivery == dict.fromkeys(ids, 1)
    with db.session() as s:
        rows = s.execute(select(Delivery.status, Delivery.attempts, Delivery.claimed_by)).all()
    assert len(rows) == 50
    assert {r.status for r in rows} == {DeliveryStatus.SENT}
    assert {r.attempts for r in rows} == {1}
    # More than one process took part (the race was real, not one process doing everything).
    assert len({r.claimed_by.split(":")[0] for r in rows}) >= 2


# -- 4. Slack 500s, then recovery -------------------------------------------------------------


def test_server_errors_back_off_then_send_once(make_service, db, fake) -> None:
    service = make_service(DELIVERY_BACKOFF_CAP_SECONDS="1")
    _, ids = file_report(db)
    report_id = ids["manager_report"]
    fake.fail("chat.postMessage", status=500, times=3)

    assert service.deliver(report_id) == DeliveryStatus.PENDING
    failed_at = max(c.wall for c in fake.calls_to("chat.postMessage"))
    pending = row(db, report_id)
    assert pending.status == DeliveryStatus.PENDING
    assert pending.attempts == 1
    assert pending.last_error and "500" in pending.last_error
    assert pending.claimed_by is None
    assert pending.fire_at.timestamp() > failed_at  # backed off into the future
    assert pending.fire_at - utcnow() <= timedelta(seconds=1.5)  # ... but capped
    assert service.deliver(report_id) == "not-claimed"  # not due yet
    assert posts_for(fake, report_id) == []

    sent = drive(service, report_id)
    assert sent.status == DeliveryStatus.SENT
    assert sent.last_error is None and sent.slack_ts
    assert 2 <= sent.attempts <= 3
    assert len(posts_for(fake, report_id)) == 1
    assert len(posts_for(fake, report_id, ok_only=False)) == 4  # 3 failures + 1 success


# -- 5. rate limits with Retry-After ----------------------------------------------------------


def test_rate_limit_retried_within_the_call(make_service, db, fake) -> None:
    service = make_service()
    _, ids = file_report(db)
    report_id = ids["manager_report"]
    fake.fail("chat.postMessage", status=429, retry_after=1, times=1)

    started = time.monotonic()
    assert service.deliver(report_id) == DeliveryStatus.SENT
    assert time.monotonic() - started >= 1.0  # the client waited Retry-After
    attempts = posts_for(fake, report_id, ok_only=False)
    assert [c.status for c in attempts] == [429, 200]
    assert attempts[1].at - attempts[0].at >= 1.0
    assert row(db, report_id).attempts == 1


def test_rate_limit_exhausted_reschedules_after_retry_after(make_service, db, fake) -> None:
    # Backoff after one attempt would be 0.2 s: the row must wait Retry-After (1 s) instead.
    service = make_service(DELIVERY_BACKOFF_CAP_SECONDS="0.2")
    _, ids = file_report(db)
    report_id = ids["manager_report"]
    fake.fail("chat.postMessage", status=429, retry_after=1, times=3)

    assert service.deliver(report_id) == DeliveryStatus.PENDING
    limited = posts_for(fake, report_id, ok_only=False)
    assert [c.status for c in limited] == [429, 429, 429]  # the client retried twice itself
    pending = row(db, report_id)
    assert pending.status == DeliveryStatus.PENDING and pending.attempts == 1
    assert pending.last_error and "429" in pending.last_error
    assert pending.fire_at.timestamp() >= limited[-1].wall + 1.0

    sent = drive(service, report_id)
    assert sent.status == DeliveryStatus.SENT and sent.attempts == 2
    ok = posts_for(fake, report_id)
    assert len(ok) == 1
    assert ok[0].wall >= limited[-1].wall + 1.0


# -- 6. a claim whose process died ------------------------------------------------------------


def test_expired_lease_is_reset_and_sent_once(make_service, db, fake) -> None:
    service = make_service()
    _, ids = file_report(db)
    report_id = ids["manager_report"]
    # Another replica claims the row, then dies before sending anything.
    dead = build_service(db, service.settings)
    dead.worker_id = "dead-replica"
    claimed_at = utcnow()
    assert dead.claim(report_id, claimed_at)
    dead.shutdown()
    claimed = row(db, report_id)
    assert claimed.status == DeliveryStatus.SENDING and claimed.claimed_by == "dead-replica"
    assert service.deliver(report_id) == "not-claimed"

    lease = service.lease
    assert service.reset_expired_leases(now=claimed_at + lease - timedelta(seconds=1)) == 0
    assert row(db, report_id).status == DeliveryStatus.SENDING

    later = claimed_at + lease + timedelta(seconds=1)
    assert service.reset_expired_leases(now=later) == 1
    reset = row(db, report_id)
    assert reset.status == DeliveryStatus.PENDING
    assert reset.duplicate_risk is True and reset.claimed_by is None

    assert service.deliver(report_id) == DeliveryStatus.SENT
    assert service.deliver(report_id) == "not-claimed"
    assert len(posts_for(fake, report_id, ok_only=False)) == 1
    sent = row(db, report_id)
    assert sent.status == DeliveryStatus.SENT and sent.duplicate_risk is True
    assert sent.attempts == 2


def test_sweep_resets_an_expired_lease_and_sends(make_service, db, fake) -> None:
    service = make_service()
    _, ids = file_report(db)
    report_id = ids["manager_report"]
    claimed_at = utcnow()
    assert service.claim(report_id, claimed_at)
    # The sweep runs with a clock past the lease; the row becomes due again and is sent.
    service.sweep(now=claimed_at + service.lease + timedelta(seconds=1))
    fake.wait_for("chat.postMessage", lambda c: delivery_id_of(c) == report_id, ok_only=True)
    sent = drive(service, report_id, timeout=5)
    assert sent.status == DeliveryStatus.SENT and sent.duplicate_risk is True
    time.sleep(0.2)
    assert len(posts_for(fake, report_id, ok_only=False)) == 1


# -- 7. permanent errors ----------------------------------------------------------------------


def test_permanent_error_fails_at_once_and_tells_the_reporter(make_service, db, fake) -> None:
    service = make_service()
    _, ids = file_report(db)
    report_id = ids["manager_report"]
    fake.fail("chat.postMessage", error="channel_not_found", times=1)

    assert service.deliver(report_id) == DeliveryStatus.FAILED
    failed = row(db, report_id)
    assert failed.status == DeliveryStatus.FAILED
    assert failed.attempts == 1
    assert failed.last_error and "channel_not_found" in failed.last_error
    assert posts_for(fake, report_id) == []

    told = [
        c
        for c in fake.calls_to("chat.postMessage", ok_only=True)
        if c.params.get("channel") == "D" + REPORTER
    ]
    assert len(told) == 1
    assert "M-1" in told[0].params["text"] and "上司への報告" in told[0].params["text"]
    assert service.deliver(report_id) == "not-claimed"


def test_permanent_error_without_anyone_to_tell(make_service, db, fake) -> None:
    service = make_service()
    _, ids = file_report(db)
    receipt_id = ids["reporter_receipt"]  # nobody to notify: the reporter is the recipient
    fake.fail("chat.postMessage", error="is_archived", times=1)
    assert service.deliver(receipt_id) == DeliveryStatus.FAILED
    assert row(db, receipt_id).status == DeliveryStatus.FAILED
    assert fake.count("chat.postMessage") == 1


# -- 8. too many attempts ---------------------------------------------------------------------


def test_max_attempts_fails_and_tells_the_reporter(make_service, db, fake) -> None:
    service = make_service(DELIVERY_MAX_ATTEMPTS="2", DELIVERY_BACKOFF_CAP_SECONDS="0.1")
    _, ids = file_report(db)
    report_id = ids["manager_report"]
    # Every send to the manager fails (each attempt is 2 calls: the client retries one 500).
    fake.fail("chat.postMessage", status=500, times=4)

    assert service.deliver(report_id) == DeliveryStatus.PENDING
    failed = drive(service, report_id)
    assert failed.status == DeliveryStatus.FAILED
    assert failed.attempts == 2
    assert failed.last_error and "500" in failed.last_error
    assert posts_for(fake, report_id) == []

    told = [
        c
        for c in fake.calls_to("chat.postMessage", ok_only=True)
        if c.params.get("channel") == "D" + REPORTER
    ]
    assert len(told) == 1 and "M-1" in told[0].params["text"]


# -- 9. superseded versions -------------------------------------------------------------------


def test_superseded_version_is_cancelled_not_sent(make_service, db, fake) -> None:
    service = make_service()
    incident_id, ids = file_report(db)
    with db.session() as s:
        s.execute(update(Incident).where(Incident.id == incident_id).values(current_version=2))

    for delivery_id in ids.values():
        assert service.deliver(delivery_id) == DeliveryStatus.CANCELLED
        cancelled = row(db, delivery_id)
        assert cancelled.status == DeliveryStatus.CANCELLED
        assert cancelled.slack_ts is None
    assert fake.count("chat.postMessage") == 0
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(SlackMessage)) == 0


# -- 10. the real scheduler -------------------------------------------------------------------


def test_scheduler_sends_on_time_and_sweeps_the_rest(make_service, db, fake) -> None:
    service = make_service(DELIVERY_SWEEP_SECONDS="0.2")
    service.start()

    # Rows nobody scheduled (another replica made them): the periodic sweep sends them.
    incident_id, ids = file_report(db)
    for delivery_id in ids.values():
        fake.wait_for(
            "chat.postMessage", lambda c, d=delivery_id: delivery_id_of(c) == d, timeout=3
        )

    # A row this process made, due in 1.5 s: a precise date job sends it then.
    fire_at = utcnow() + timedelta(seconds=1.5)
    with db.session() as s:
        later = new_delivery(
            "manager_report",
            MANAGER,
            fire_at=fire_at,
            incident_id=incident_id,
            report_version=1,
            notify_on_failure=REPORTER,
        )
        s.add(later)
        s.flush()
        later_id = later.id
    service.schedule(later_id, fire_at)
    (call,) = fake.wait_for(
        "chat.postMessage", lambda c: delivery_id_of(c) == later_id, timeout=5, ok_only=True
    )
    assert fire_at.timestamp() - 0.05 <= call.wall <= fire_at.timestamp() + 1.0
    sent = drive(service, later_id, timeout=2)
    assert sent.status == DeliveryStatus.SENT and not sent.late

    time.sleep(0.5)  # a few more sweeps: nothing is sent twice
    for delivery_id in [*ids.values(), later_id]:
        assert len(posts_for(fake, delivery_id, ok_only=False)) == 1
        assert row(db, delivery_id).status == DeliveryStatus.SENT
    service.shutdown()


def test_late_row_is_marked_late(make_service, db, fake) -> None:
    service = make_service()
    _, ids = file_report(db)
    report_id = ids["manager_report"]
    fired = row(db, report_id).fire_at
    assert service.claim(report_id, now=fired + timedelta(minutes=5))
    assert row(db, report_id).late is True


# -- 11. UTCDateTime --------------------------------------------------------------------------


def test_utc_datetime_refuses_naive_and_reads_back_aware_utc(db) -> None:
    naive = datetime(2030, 1, 2, 3, 4, 5)  # no tzinfo: the point of the test
    refused = pytest.raises((ValueError, StatementError), match="naive datetime refused")
    with refused, db.session() as s:
        s.add(new_delivery("manager_report", MANAGER, fire_at=naive))
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Delivery)) == 0

    tokyo = timezone(timedelta(hours=9))
    stored = datetime(2030, 1, 2, 12, 4, 5, 123456, tzinfo=tokyo)
    with db.session() as s:
        delivery = new_delivery("manager_report", MANAGER, fire_at=stored)
        s.add(delivery)
        s.flush()
        delivery_id = delivery.id
    with db.session() as s:
        fire_at, created_at = s.execute(
            select(Delivery.fire_at, Delivery.created_at).where(Delivery.id == delivery_id)
        ).one()
    for value in (fire_at, created_at):
        assert value.tzinfo is UTC
    assert fire_at == stored
    assert fire_at == datetime(2030, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)

    # Comparisons in SQL use the same conversion: the row is due exactly from its instant on.
    with db.session() as s:
        due = select(Delivery.id).where(Delivery.fire_at <= stored)
        assert s.scalars(due).all() == [delivery_id]
        early = select(Delivery.id).where(Delivery.fire_at < stored.astimezone(UTC))
        assert s.scalars(early).all() == []

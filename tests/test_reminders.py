"""Reminders with the real scheduler and short real deadlines, through the real bot process.

before / due / escalate, keeping cancels, kept late, the manager's sign-off nudge and sending the
report to another manager, a restart with a reminder due while the bot is down, several
processes sharing one database, Slack 500s and 429s; plus the pure due-row logic as a function
of `now` (time-machine, tick off).
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import select

import bot.messages  # noqa: F401  (registers the delivery kinds)
from bot.models import Delivery, Promise
from bot.types import utcnow
from bot.workflow import (
    ReportInput,
    Timings,
    before_at,
    due_row_ids,
    keep_promise,
    move_promise,
    submit_report,
)
from tests.conftest import MANAGER, MANAGER_JA, OTHER, REPORTER
from tests.harness.botprocess import BotProcess
from tests.harness.flows import all_text, buttons, click, dm
from tests.harness.reminders import (
    ESCALATE,
    LEAD,
    SHORT,
    audit_actions,
    client_for,
    delivery_id_of,
    file_case,
    ids_of_kind,
    opened_view,
    posts,
    promise,
    short_bot,
    statuses,
    wait_posts,
)
from tests.harness.slackrequests import user as user_value

ON_POSTGRES = (os.environ.get("TEST_DATABASE_URL") or "").startswith("postgres")


@pytest.fixture(scope="module")
def rbot(request):
    yield from short_bot(request)


@pytest.fixture
def slack(rbot, db, fake):
    return client_for(rbot, fake)


def _local(at: datetime, tz: str) -> str:
    return at.astimezone(ZoneInfo(tz)).strftime("%H:%M")


# -- before / due / escalate -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("reporter", "manager", "words"),
    [
        (REPORTER, MANAGER, {"before": "あと", "due": "今すぐ", "escalate": "overdue"}),
        (
            OTHER,
            MANAGER_JA,
            {"before": "min)", "due": "Contact the client now", "escalate": "過ぎても"},
        ),
    ],
)
def test_before_due_escalate(slack, fake, db, reporter, manager, words) -> None:
    case, p = file_case(slack, fake, db, reporter, manager, due_in=LEAD + 3)
    before = wait_posts(fake, db, "before", timeout=10)[0]
    assert before.params["channel"] == f"D{reporter}"
    text = all_text(before.params["blocks"])
    assert words["before"] in text and case.short_id in text
    assert set(buttons(before.params["blocks"])) == {
        "promise_keep",
        "promise_keep_next",
        "promise_move",
        "promise_cancel",
    }
    row = ids_of_kind(db, "before")[delivery_id_of(before)]
    assert row.fire_at == p.due_at - timedelta(seconds=LEAD)
    assert before.wall - row.fire_at.timestamp() < 1.5  # on time, not found by a late sweep
    assert not row.late

    due = wait_posts(fake, db, "due", timeout=10)[0]
    dtext = all_text(due.params["blocks"])
    assert words["due"] in dtext
    assert set(buttons(due.params["blocks"])) == {"promise_keep", "promise_keep_next"}
    _wait_status(db, p.id, "missed")
    # The suggestion says what to tell the client, with a next contact time in the reader's zone.
    tz = "Asia/Tokyo" if reporter == REPORTER else "America/New_York"
    assert "株式会社サンプル" in dtext
    assert "promise_keep" in buttons(due.params["blocks"])
    # The case DMs are updated in place to show the promise as missed.
    missed_word = "期限切れ" if reporter == REPORTER else "missed"
    fake.wait_for("chat.update", lambda c: missed_word in all_text(c.params.get("blocks")))

    esc = wait_posts(fake, db, "escalate", timeout=10)[0]
    assert esc.params["channel"] == f"D{manager}"
    etext = all_text(esc.params["blocks"])
    assert words["escalate"] in etext and f"<@{reporter}>" in etext
    assert buttons(esc.params["blocks"]) == {}  # the manager is told, the promise is the reporter's
    assert _local(p.due_at, tz) in all_text(before.params["blocks"])
    assert audit_actions(db, case.id)[-1] == "promise_missed"
    for kind in ("before", "due", "escalate"):
        assert len(posts(fake, db, kind)) == 1


def test_short_promise_reminds_at_half_the_time(slack, fake, db) -> None:
    _case, p = file_case(slack, fake, db, REPORTER, MANAGER, due_in=LEAD - 1)
    (row,) = ids_of_kind(db, "before").values()
    remaining = p.due_at - row.created_at
    assert abs((row.fire_at - row.created_at) - remaining / 2) < timedelta(milliseconds=50)
    wait_posts(fake, db, "before", timeout=5)
    wait_posts(fake, db, "due", timeout=5)


def test_keeping_cancels_the_remaining_reminders(slack, fake, db) -> None:
    case, p = file_case(slack, fake, db, REPORTER, MANAGER, due_in=LEAD + 2)
    before = wait_posts(fake, db, "before", timeout=8)[0]
    click(slack, REPORTER, "promise_keep", str(p.id))
    # The reminder is updated in place: no buttons, "contacted".
    update = fake.wait_for(
        "chat.update",
        lambda c: (
            c.params.get("ts") == before.response["ts"]
            and "連絡しました" in all_text(c.params["blocks"])
        ),
    )[0]
    assert buttons(update.params["blocks"]) == {}
    kept = promise(db, p.id)
    assert kept.status == "kept" and not kept.kept_late
    rows = statuses(db, p.id)
    assert rows["before:0"] in ("sent", "sending")  # its post is being recorded at most
    assert (rows["due:0"], rows["escalate:0"]) == ("cancelled", "cancelled")
    click(slack, REPORTER, "promise_keep", str(p.id))  # a double click changes nothing
    time.sleep(2 + ESCALATE + 1)
    assert posts(fake, db, "due") == [] and posts(fake, db, "escalate") == []
    assert audit_actions(db, case.id).count("promise_kept") == 1
    fake.wait_for("chat.update", lambda c: "連絡済み" in all_text(c.params.get("blocks")))


def test_missed_then_kept_late(slack, fake, db) -> None:
    _case, p = file_case(slack, fake, db, REPORTER, MANAGER, due_in=1.5)
    wait_posts(fake, db, "due", timeout=8)
    _wait_status(db, p.id, "missed")
    click(slack, REPORTER, "promise_keep", str(p.id))
    _wait_status(db, p.id, "kept")
    kept = promise(db, p.id)
    assert kept.status == "kept" and kept.kept_late
    fake.wait_for("chat.update", lambda c: "遅れて連絡済み" in all_text(c.params.get("blocks")))
    fake.wait_for("chat.update", lambda c: "kept late" in all_text(c.params.get("blocks")))
    time.sleep(ESCALATE + 1)
    assert posts(fake, db, "escalate") == []


def test_next_promise_chain(slack, fake, db) -> None:
    case, p = file_case(slack, fake, db, REPORTER, MANAGER, due_in=LEAD + 1)
    wait_posts(fake, db, "before", timeout=8)
    click(slack, REPORTER, "promise_keep_next", str(p.id))
    view = opened_view(fake, "horenso_promise_next")
    due = int(time.time()) + LEAD + 2
    from tests.harness.reminders import submit_due

    resp = submit_due(slack, REPORTER, view, due, view_id="VNEXT1")
    assert resp.status == 200 and "errors" not in (resp.json or {}), resp.body
    resp = submit_due(slack, REPORTER, view, due, view_id="VNEXT1")  # a replay
    with_prev = [q for q in _promises(db, case.id) if q.previous_id == p.id]
    assert len(with_prev) == 1
    nxt = with_prev[0]
    assert promise(db, p.id).status == "kept" and nxt.status == "pending"
    assert int(nxt.due_at.timestamp()) == due
    # The next promise has its own reminders.
    wait_posts(fake, db, "before", count=2, timeout=8)
    assert statuses(db, nxt.id)["due:0"] == "pending"
    assert audit_actions(db, case.id).count("promise_added") == 1


def _settled(db, kind: str, timeout: float = 5.0):
    """The one row of `kind`, once the sender has recorded the outcome of its post."""
    deadline = time.monotonic() + timeout
    while True:
        (row,) = ids_of_kind(db, kind).values()
        if row.status != "sending" or time.monotonic() > deadline:
            return row
        time.sleep(0.05)


def _wait_status(db, promise_id: int, status: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while promise(db, promise_id).status != status:
        assert time.monotonic() < deadline, promise(db, promise_id).status
        time.sleep(0.05)


def _promises(db, incident_id):
    with db.session() as s:
        rows = list(s.scalars(select(Promise).where(Promise.incident_id == incident_id)))
        for r in rows:
            s.expunge(r)
        return rows


# -- the manager's sign-off SLA -----------------------------------------------------------------


def test_manager_nudge_and_send_to_another_manager(slack, fake, db) -> None:
    case, _p = file_case(slack, fake, db, REPORTER, MANAGER, due_in=600)
    report = dm(fake, MANAGER)[0]
    nudge = wait_posts(fake, db, "manager_sla", timeout=10)[0]
    assert nudge.params["channel"] == f"D{MANAGER}"
    assert "waiting for your decision" in all_text(nudge.params["blocks"])
    told = wait_posts(fake, db, "manager_nudged", timeout=10)[0]
    assert told.params["channel"] == f"D{REPORTER}"
    assert told.wall >= nudge.wall
    ttext = all_text(told.params["blocks"])
    assert "催促しました" in ttext and "社内で確認しております" in ttext
    value = buttons(told.params["blocks"])["reassign_manager"]["value"]

    click(slack, OTHER, "reassign_manager", value)  # not the reporter: refused
    assert fake.wait_for_response()[0].body["response_type"] == "ephemeral"
    click(slack, REPORTER, "reassign_manager", value)
    view = opened_view(fake, "horenso_reassign")
    values = {"new_manager": {"value": user_value(MANAGER_JA)}}
    resp = slack.view_submission(
        REPORTER, "horenso_reassign", values, private_metadata=view["private_metadata"]
    )
    assert resp.status == 200 and "errors" not in (resp.json or {}), resp.body
    new = dm(fake, MANAGER_JA)[0]
    assert "ミスの報告" in all_text(new.params["blocks"])
    fake.wait_for(
        "chat.update",
        lambda c: (
            c.params.get("ts") == report.response["ts"]
            and f"<@{MANAGER_JA}>" in all_text(c.params["blocks"])
        ),
    )
    # The first manager's buttons no longer decide; the new manager's do.
    old_value = buttons(report.params["blocks"])["approve"]["value"]
    click(slack, MANAGER, "approve", old_value)
    assert "<@" in fake.wait_for_response(count=2)[-1].body["text"]
    click(slack, MANAGER_JA, "approve", buttons(new.params["blocks"])["approve"]["value"])
    dm(fake, REPORTER, lambda c: "承認" in (c.params.get("text") or ""))
    assert "reassigned" in audit_actions(db, case.id)
    assert audit_actions(db, case.id)[-1] == "approved"
    # The new manager got a fresh sign-off window, which the decision closed: no second nudge.
    time.sleep(5)
    assert len(posts(fake, db, "manager_sla")) == 1


def test_no_nudge_once_decided(slack, fake, db) -> None:
    _case, _p = file_case(slack, fake, db, REPORTER, MANAGER, due_in=600)
    report = dm(fake, MANAGER)[0]
    click(slack, MANAGER, "approve", buttons(report.params["blocks"])["approve"]["value"])
    time.sleep(6)
    assert posts(fake, db, "manager_sla") == [] and posts(fake, db, "manager_nudged") == []
    with db.session() as s:
        rows = s.scalars(select(Delivery.status).where(Delivery.kind.like("manager_%d%")))
        assert set(rows) <= {"cancelled"}


# -- restart, replicas, Slack failures ------------------------------------------------------------


def test_reminder_due_while_the_bot_is_down_is_sent_once_marked_late(rbot, fake, db) -> None:
    slack = client_for(rbot, fake)
    _case, p = file_case(slack, fake, db, REPORTER, MANAGER, due_in=LEAD + 1.5)
    rbot.stop()
    try:
        while utcnow() < p.due_at + timedelta(seconds=32):  # past the 30 s grace: late
            time.sleep(0.5)
    finally:
        rbot.start()
    due = wait_posts(fake, db, "due", timeout=10)[0]
    row = _settled(db, "due")
    assert row.status == "sent" and row.late
    assert f"本来は {_local(p.due_at, 'Asia/Tokyo')} にお届けする" in all_text(due.params["blocks"])
    time.sleep(1.5)
    assert len(posts(fake, db, "due")) == 1
    # The `before` reminder fell due while down too; it is skipped in favour of `due`.
    (before,) = ids_of_kind(db, "before").values()
    assert before.status == "cancelled" and posts(fake, db, "before") == []


@pytest.mark.parametrize("processes", [3] if ON_POSTGRES else [1])
def test_replicas_send_each_of_100_reminders_once(rbot, fake, db, processes) -> None:
    rbot.stop()
    bots = [BotProcess(fake.api_url, db.url, **SHORT) for _ in range(processes)]
    try:
        for b in bots:
            b.start()
        now = utcnow()
        timings = Timings(lead_seconds=1, escalation_seconds=3600, manager_sla_seconds=3600)
        with db.session() as s:
            for n in range(100):
                submit_report(
                    s,
                    team_id="T0001",
                    reporter_id=REPORTER,
                    data=_report(now + timedelta(seconds=4 + (n % 20) / 10)),
                    locale="ja",
                    submit_key=f"replica-{n}",
                    now=now,
                    timings=timings,
                )
        dues = ids_of_kind(db, "due")
        assert len(dues) == 100
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            with db.session() as s:
                left = s.scalar(
                    select(Delivery.id).where(
                        Delivery.kind.in_(["due", "manager_report", "reporter_receipt"]),
                        Delivery.status.in_(["pending", "sending"]),
                    )
                )
            if left is None:
                break
            time.sleep(0.2)
        time.sleep(1.0)
        per_delivery: dict[int, int] = {}
        for c in fake.calls_to("chat.postMessage", ok_only=True):
            did = delivery_id_of(c)
            if did is not None:
                per_delivery[did] = per_delivery.get(did, 0) + 1
        rows = ids_of_kind(db, "due").values()
        assert {did: per_delivery.get(did, 0) for did in dues} == dict.fromkeys(dues, 1), [
            (r.id, r.status, r.last_error) for r in rows if r.status != "sent"
        ][:5]
        assert set(per_delivery.values()) == {1}
        rows = ids_of_kind(db, "due").values()
        assert {r.status for r in rows} == {"sent"}
        assert not any(r.duplicate_risk for r in rows)
        if processes > 1:
            assert len({r.claimed_by for r in rows}) >= 2
    finally:
        for b in bots:
            b.stop()
        rbot.start()


def _report(next_contact: datetime) -> ReportInput:
    return ReportInput(
        client="株式会社サンプル",
        severity="major",
        noticed_at=next_contact - timedelta(minutes=30),
        timeline="10:05 請求書の金額が桁違いでした。",
        client_situation="先方の経理部長が訂正版を求めています。",
        countermeasure="本日15時までに訂正版を送付します。",
        manager_id=MANAGER,
        next_contact=next_contact,
    )


def test_slack_500_then_429_then_recovery(slack, fake, db) -> None:
    _case, p = file_case(slack, fake, db, REPORTER, MANAGER, due_in=LEAD + 2.5)
    wait_posts(fake, db, "before", timeout=8)
    while utcnow() < p.due_at - timedelta(seconds=0.3):
        time.sleep(0.05)
    fake.fail("chat.postMessage", status=500, seconds=2.5)
    fake.fail("chat.postMessage", status=429, retry_after=1, times=4)
    due = wait_posts(fake, db, "due", timeout=20)
    assert len(due) == 1
    row = _settled(db, "due")
    assert row.status == "sent" and row.attempts >= 2
    failed = [c for c in fake.calls_to("chat.postMessage") if c.failed]
    assert {c.status for c in failed} == {500, 429}
    time.sleep(1.5)
    assert len(posts(fake, db, "due")) == 1


# -- the pure due-row logic, as a function of now (time-machine, tick off) ------------------------


def test_due_rows_as_a_function_of_now(db) -> None:
    # A month ahead: no running bot sweeps these rows while the test looks at them.
    t0 = (utcnow() + timedelta(days=30)).replace(minute=0, second=0, microsecond=0)
    timings = Timings(lead_seconds=300, escalation_seconds=900, manager_sla_seconds=900)
    with time_machine.travel(t0, tick=False), db.session() as s:
        out = submit_report(
            s,
            team_id="T0001",
            reporter_id=REPORTER,
            data=_report(t0 + timedelta(minutes=30)),
            locale="ja",
            submit_key="tm-1",
            now=utcnow(),
            timings=timings,
        )
        kinds = {d.kind: d.id for d in out.deliveries}
        promise_id = s.scalar(select(Promise.id))
    before, due, esc = kinds["before"], kinds["due"], kinds["escalate"]
    with db.session() as s:
        assert due_row_ids(s, t0 + timedelta(minutes=24)) == []
        assert due_row_ids(s, t0 + timedelta(minutes=25)) == [before]
        assert due_row_ids(s, t0 + timedelta(minutes=30)) == [before, due]
        assert due_row_ids(s, t0 + timedelta(minutes=45)) == [before, due, esc]
    # Moving the promise replaces its rows (new revision); keeping it cancels them.
    with time_machine.travel(t0 + timedelta(minutes=10), tick=False), db.session() as s:
        move_promise(
            s,
            promise_id=promise_id,
            actor=REPORTER,
            due_at=t0 + timedelta(minutes=60),
            now=utcnow(),
            timings=timings,
        )
    with db.session() as s:
        later = due_row_ids(s, t0 + timedelta(minutes=55))
    assert before not in later and len(later) == 1
    assert [k for k, st in statuses(db, promise_id).items() if st == "pending"] == [
        "before:1",
        "due:1",
        "escalate:1",
    ]
    with time_machine.travel(t0 + timedelta(minutes=20), tick=False), db.session() as s:
        keep_promise(s, promise_id=promise_id, actor=REPORTER, now=utcnow())
    with db.session() as s:
        assert due_row_ids(s, t0 + timedelta(hours=3)) == []


def test_before_time_rule() -> None:
    now = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
    assert before_at(now + timedelta(minutes=30), now, 300) == now + timedelta(minutes=25)
    assert before_at(now + timedelta(minutes=4), now, 300) == now + timedelta(minutes=2)
    assert before_at(now, now, 300) is None
    assert before_at(now - timedelta(seconds=1), now, 300) is None

"""The recurrence-prevention plan: written from approval on, required to close, its measures'
reminders reach their owners even after the case is closed, and owners mark them done."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from bot.models import Delivery, Incident, PreventionMeasure, PreventionPlan
from tests.conftest import MANAGER, MANAGER_JA, OTHER, REPORTER
from tests.harness.apology import approve, inputs, log_apology, opened_view, own_bot, save_plan
from tests.harness.botprocess import SIGNING_SECRET, BotProcess
from tests.harness.flows import all_text, buttons, click, dm
from tests.harness.slackrequests import SlackRequests


@pytest.fixture(scope="module")
def module_bot(fake_session, database_url) -> Iterator[BotProcess]:
    yield from own_bot(fake_session.api_url, database_url)


@pytest.fixture
def slack(module_bot, db, fake) -> SlackRequests:
    """This module's own bot, stopped when the module ends."""
    return SlackRequests(module_bot.url, SIGNING_SECRET, fake=fake)


def _refusal(fake, n: int) -> str:
    return fake.wait_for_response(count=n)[n - 1].body["text"]


def _measures(db) -> list[PreventionMeasure]:
    with db.session() as s:
        return list(s.scalars(select(PreventionMeasure).order_by(PreventionMeasure.position)))


def _reminders(db) -> list[tuple[str, str, str]]:
    with db.session() as s:
        rows = s.scalars(
            select(Delivery).where(Delivery.kind == "measure_due").order_by(Delivery.id)
        )
        return [(d.recipient, d.status, d.dedupe_key) for d in rows]


def test_plan_modal_validation_and_editing(slack, fake, db) -> None:
    case, blocks = approve(slack, fake, db)
    click(slack, REPORTER, "prevention_plan", buttons(blocks)["prevention_plan"]["value"])
    view = opened_view(fake, "horenso_plan")
    fields = inputs(view)
    assert fields["measure_1_owner"]["element"]["initial_user"] == REPORTER
    assert "optional" not in fields["measure_1_what"] or not fields["measure_1_what"]["optional"]
    assert fields["measure_2_what"]["optional"] is True
    now = int(time.time())
    # Incomplete rows, a past due date and a missing root cause are field errors.
    resp = save_plan(slack, case, [("二名で確認", "", now + 3600)], root_cause=" ")
    errors = resp.json["errors"]
    assert {"root_cause", "measure_1_owner"} <= set(errors)
    resp = save_plan(slack, case, [("二名で確認", REPORTER, now - 86400)])
    assert "過ぎて" in resp.json["errors"]["measure_1_due"]
    assert _measures(db) == []
    # A valid plan: one reminder per measure, to its owner, at its due date.
    plan = [
        ("送付前に二名で金額を確認する", OTHER, now + 86400),
        ("請求書テンプレートを改修", MANAGER_JA, now + 172800),
    ]
    assert save_plan(slack, case, plan, view_id="VPLAN1").body in ("", "null")
    assert [(m.owner_id, m.status) for m in _measures(db)] == [
        (OTHER, "open"),
        (MANAGER_JA, "open"),
    ]
    assert [(r, st) for r, st, _ in _reminders(db)] == [(OTHER, "pending"), (MANAGER_JA, "pending")]
    # The same plan again (a retry) changes nothing.
    save_plan(slack, case, plan, view_id="VPLAN1")
    assert len(_reminders(db)) == 2
    # The manager edits it: the changed measure's reminder is replaced, the removed one goes.
    click(slack, MANAGER, "prevention_plan", str(case.id))
    edit = opened_view(fake, "horenso_plan", count=2)
    fields = inputs(edit)
    assert fields["measure_2_what"]["element"]["initial_value"] == "請求書テンプレートを改修"
    assert fields["root_cause"]["element"]["initial_value"].startswith("送付前の金額確認")
    new_plan = [("送付前に二名で金額を確認する", OTHER, now + 3 * 86400)]
    assert save_plan(slack, case, new_plan, actor=MANAGER).body in ("", "null")
    assert [(m.owner_id, m.position) for m in _measures(db)] == [(OTHER, 0)]
    reminders = _reminders(db)
    assert [st for _, st, _ in reminders] == ["cancelled", "cancelled", "pending"]
    assert reminders[-1][2].endswith(":2")  # the plan's second revision
    with db.session() as s:
        assert s.scalar(select(PreventionPlan.revision)) == 2
    # Only the reporter and the manager may write it.
    click(slack, OTHER, "prevention_plan", str(case.id))
    assert "Only the reporter" in _refusal(fake, 1)
    resp = save_plan(slack, case, new_plan, actor=OTHER)
    assert "Only the reporter" in resp.json["errors"]["root_cause"]


def test_close_needs_the_apology_and_a_plan_and_measures_outlive_it(slack, fake, db) -> None:
    case, blocks = approve(slack, fake, db)
    close = buttons(blocks)["close_case"]["value"]
    click(slack, REPORTER, "close_case", close)
    assert "謝罪を記録" in _refusal(fake, 1)  # apologise first
    assert log_apology(slack, case).body in ("", "null")
    click(slack, REPORTER, "close_case", close)
    assert "再発防止策がないため" in _refusal(fake, 2)
    with db.session() as s:
        assert s.get(Incident, case.id).state == "apologised"
    now = int(time.time())
    plan = [
        ("送付前に二名で金額を確認する", OTHER, now + 3),
        ("手順書を更新する", MANAGER_JA, now + 3600),
    ]
    assert save_plan(slack, case, plan).body in ("", "null")
    click(slack, OTHER, "close_case", close)
    assert "Only the reporter" in _refusal(fake, 3)
    click(slack, REPORTER, "close_case", close)
    assert "完了にしました" in _refusal(fake, 4)
    told = dm(fake, MANAGER, lambda c: "closed" in (c.params.get("text") or ""))[0]
    text = all_text(told.params["blocks"])
    assert case.short_id in text and "2 of 2" in text
    assert set(buttons(told.params["blocks"])) == {"export_case"}
    with db.session() as s:
        incident = s.get(Incident, case.id)
        assert incident.state == "closed" and incident.closed_at is not None
    # Closing twice changes nothing; the plan can no longer be edited.
    click(slack, MANAGER, "close_case", close)
    time.sleep(0.3)
    assert len(dm(fake, MANAGER, lambda c: "closed" in c.params.get("text", ""))) == 1
    resp = save_plan(slack, case, plan)
    assert "完了済み" in resp.json["errors"]["root_cause"]
    click(slack, REPORTER, "draft_letter", close)
    assert (
        "完了済み"
        in fake.wait_for_response(lambda r: "完了済み" in r.body.get("text", ""))[0].body["text"]
    )
    # The measure's owner is reminded on its due date, after the case has closed.
    reminder = dm(
        fake, OTHER, lambda c: "prevention measure" in (c.params.get("text") or ""), timeout=10
    )[0]
    rtext = all_text(reminder.params["blocks"])
    assert "送付前に二名で金額を確認する" in rtext and case.short_id in rtext
    done = buttons(reminder.params["blocks"])["measure_done"]
    # Someone else cannot mark it done; the owner can, once.
    click(slack, MANAGER_JA, "measure_done", done["value"], channel=reminder.response["channel"])
    refusal = fake.wait_for_response(lambda r: "完了にできるのは" in r.body.get("text", ""))[0]
    assert "<@U0OTHER>" in refusal.body["text"]
    click(slack, OTHER, "measure_done", done["value"], channel=reminder.response["channel"])
    replaced = fake.wait_for_response(lambda r: r.body.get("replace_original") is True)[0].body
    assert "Done" in json.dumps(replaced["blocks"]) and buttons(replaced["blocks"]) == {}
    click(slack, OTHER, "measure_done", done["value"])
    time.sleep(0.3)
    measures = _measures(db)
    assert (measures[0].status, measures[0].done_by) == ("done", OTHER)
    assert measures[1].status == "open"
    statuses = [st for _, st, _ in _reminders(db)]
    assert statuses == ["sent", "pending"]  # the other measure's reminder is still owed

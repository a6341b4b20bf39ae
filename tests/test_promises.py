"""Promises through Slack: `/mistake promise`, the receipt's buttons, moving and cancelling,
who may touch a promise, `/mistake list` and `status`, withdrawing a case (shared bot)."""

from __future__ import annotations

import time

import pytest

from tests.conftest import MANAGER, MANAGER_JA, OTHER, REPORTER
from tests.harness.flows import all_text, buttons, click, dm, submit
from tests.harness.reminders import (
    audit_actions,
    file_case,
    opened_view,
    promise,
    promises_of,
    statuses,
    submit_due,
)


def _ephemeral(fake, count: int = 1) -> dict:
    return fake.wait_for_response(count=count)[-1].body


def test_promise_command_with_no_open_case(slack, fake, db) -> None:
    slack.command("promise", user_id=REPORTER)
    body = _ephemeral(fake)
    assert body["response_type"] == "ephemeral" and "対応中の案件がありません" in body["text"]
    assert fake.count("views.open") == 0


def test_promise_command_with_one_open_case(slack, fake, db) -> None:
    case, _first = file_case(slack, fake, db, REPORTER, MANAGER, due_in=1800)
    slack.command("promise", user_id=REPORTER)
    view = opened_view(fake, "horenso_promise_add")
    assert "promise_case" not in all_text(view["blocks"]) and case.short_id in all_text(
        view["blocks"]
    )
    due = int(time.time()) + 3600
    assert submit_due(slack, REPORTER, view, due, view_id="VADD1").json is None
    submit_due(slack, REPORTER, view, due, view_id="VADD1")  # a replay adds nothing
    rows = promises_of(db, case.id)
    assert len(rows) == 2 and int(rows[1].due_at.timestamp()) == due
    assert set(statuses(db, rows[1].id)) == {"before:0", "due:0", "escalate:0"}
    assert audit_actions(db, case.id).count("promise_added") == 1
    # The manager's report and the receipt are updated in place with the new promise.
    fake.wait_for("chat.update", lambda c: all_text(c.params.get("blocks")).count("未連絡") == 2)
    # A time in the past is refused on the field.
    resp = submit_due(slack, REPORTER, view, int(time.time()) - 3600)
    assert resp.json["response_action"] == "errors" and "promise_due" in resp.json["errors"]


def test_promise_command_with_several_cases_and_with_an_id(slack, fake, db) -> None:
    first, _ = file_case(slack, fake, db, REPORTER, MANAGER, due_in=1800)
    second, _ = file_case(slack, fake, db, REPORTER, MANAGER_JA, due_in=1800)
    slack.command("promise", user_id=REPORTER)
    view = opened_view(fake, "horenso_promise_add")
    select = next(b for b in view["blocks"] if b.get("block_id") == "promise_case")
    assert [o["value"] for o in select["element"]["options"]] == [str(second.id), str(first.id)]
    due = int(time.time()) + 5400
    resp = submit_due(slack, REPORTER, view, due)  # no case chosen
    assert resp.json["errors"].keys() == {"promise_case"}
    assert submit_due(slack, REPORTER, view, due, case_id=first.id).status == 200
    assert len(promises_of(db, first.id)) == 2 and len(promises_of(db, second.id)) == 1

    slack.command(f"promise {second.short_id}", user_id=REPORTER)
    view = opened_view(fake, "horenso_promise_add", count=2)
    assert second.short_id in all_text(view["blocks"])
    submit_due(slack, REPORTER, view, due)
    assert len(promises_of(db, second.id)) == 2
    # Unknown ids and other people's cases are refused privately.
    slack.command("promise M-99", user_id=REPORTER)
    assert "M-99" in _ephemeral(fake)["text"]
    slack.command(f"promise {first.short_id}", user_id=OTHER)
    assert "Only the person who reported" in _ephemeral(fake, 2)["text"]
    assert fake.count("views.open") == 2


def test_receipt_buttons_add_move_and_cancel(slack, fake, db) -> None:
    case, p = file_case(slack, fake, db, REPORTER, MANAGER, due_in=1800)
    receipt = dm(fake, REPORTER)[0]
    acts = buttons(receipt.params["blocks"])
    assert {"promise_add", "promise_move", "promise_cancel"} <= set(acts)
    assert acts["promise_move"]["value"] == str(p.id)
    click(slack, REPORTER, "promise_add", acts["promise_add"]["value"])
    opened_view(fake, "horenso_promise_add")

    click(slack, REPORTER, "promise_move", str(p.id))
    view = opened_view(fake, "horenso_promise_move")
    new_due = int(time.time()) + 7200
    assert submit_due(slack, REPORTER, view, new_due, view_id="VMOVE1").status == 200
    submit_due(slack, REPORTER, view, new_due, view_id="VMOVE1")  # a replay
    moved = promise(db, p.id)
    assert moved.revision == 1 and int(moved.due_at.timestamp()) == new_due
    assert statuses(db, p.id) == {
        "before:0": "cancelled",
        "due:0": "cancelled",
        "escalate:0": "cancelled",
        "before:1": "pending",
        "due:1": "pending",
        "escalate:1": "pending",
    }
    click(slack, REPORTER, "promise_cancel", str(p.id))
    click(slack, REPORTER, "promise_cancel", str(p.id))  # a double click
    deadline = time.monotonic() + 5
    while promise(db, p.id).status != "cancelled":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)
    assert set(statuses(db, p.id).values()) == {"cancelled"}
    assert audit_actions(db, case.id) == ["submitted", "promise_moved", "promise_cancelled"]
    fake.wait_for("chat.update", lambda c: "取り消し" in all_text(c.params.get("blocks")))
    # A cancelled promise cannot be moved.
    click(slack, REPORTER, "promise_move", str(p.id))
    assert "取り消されています" in _ephemeral(fake)["text"]


@pytest.mark.parametrize("clicker", [MANAGER, OTHER])
@pytest.mark.parametrize(
    "action", ["promise_keep", "promise_keep_next", "promise_move", "promise_cancel"]
)
def test_only_the_reporter_touches_a_promise(slack, fake, db, clicker, action) -> None:
    case, p = file_case(slack, fake, db, REPORTER, MANAGER, due_in=1800)
    click(slack, clicker, action, str(p.id))
    body = _ephemeral(fake)
    assert body["response_type"] == "ephemeral" and body.get("replace_original") is False
    assert case.short_id in body["text"]
    time.sleep(0.3)
    assert promise(db, p.id).status == "pending" and promise(db, p.id).revision == 0
    assert audit_actions(db, case.id) == ["submitted"]
    assert fake.count("views.open") == 0
    click(slack, clicker, action, "garbage")
    assert (
        "見つかりません" in _ephemeral(fake, 2)["text"]
        or "not be found" in _ephemeral(fake, 2)["text"]
    )


def test_list_and_status(slack, fake, db) -> None:
    case, _p = file_case(slack, fake, db, REPORTER, MANAGER, due_in=1800)
    slack.command("list", user_id=REPORTER)
    text = all_text(_ephemeral(fake)["blocks"])
    assert case.short_id in text and "あなたが報告" in text
    slack.command("list", user_id=MANAGER)
    text = all_text(_ephemeral(fake, 2)["blocks"])
    assert case.short_id in text and "you sign off" in text
    slack.command(f"status {case.short_id}", user_id=MANAGER)
    text = all_text(_ephemeral(fake, 3)["blocks"])
    assert "pending" in text and f"<@{REPORTER}>" in text
    slack.command(f"status {case.short_id}", user_id=OTHER)
    assert "Only the reporter and the manager" in _ephemeral(fake, 4)["text"]
    slack.command("list", user_id=OTHER)
    assert "no open cases" in all_text(_ephemeral(fake, 5)["blocks"])


def test_withdrawing_cancels_the_promise_reminders(slack, fake, db) -> None:
    case, p = file_case(slack, fake, db, REPORTER, MANAGER, due_in=1800)
    resp = slack.view_submission(
        REPORTER,
        "horenso_withdraw",
        {"reason": {"value": {"type": "plain_text_input", "value": "誤報でした"}}},
        private_metadata=f'{{"case": "{case.id}:1"}}',
    )
    assert resp.status == 200
    assert promise(db, p.id).status == "cancelled"
    assert set(statuses(db, p.id).values()) == {"cancelled"}
    click(slack, REPORTER, "promise_keep", str(p.id))
    assert "取り消されています" in _ephemeral(fake)["text"]


def test_validation_still_creates_nothing(slack, fake, db) -> None:
    resp = submit(slack, REPORTER, MANAGER, next_contact=int(time.time()) - 3600)
    assert resp.json["response_action"] == "errors"
    assert fake.count("chat.postMessage") == 0

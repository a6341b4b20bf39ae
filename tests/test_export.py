"""Export: the whole case as one Markdown file in the requester's DM, for the reporter and the
manager only, from `/mistake export <case id>` and from a button."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select, update

from bot.models import Promise
from tests.conftest import MANAGER, OTHER, REPORTER
from tests.harness.apology import (
    approve,
    file_case,
    files_in,
    log_apology,
    own_bot,
    save_plan,
    wait_files,
)
from tests.harness.botprocess import SIGNING_SECRET, BotProcess
from tests.harness.flows import buttons, click
from tests.harness.slackrequests import SlackRequests


@pytest.fixture(scope="module")
def module_bot(fake_session, database_url) -> Iterator[BotProcess]:
    yield from own_bot(fake_session.api_url, database_url)


@pytest.fixture
def slack(module_bot, db, fake) -> SlackRequests:
    """This module's own bot, stopped when the module ends."""
    return SlackRequests(module_bot.url, SIGNING_SECRET, fake=fake)


def _ephemeral(fake, n: int) -> str:
    body = fake.wait_for_response(count=n)[n - 1].body
    assert body["response_type"] == "ephemeral"
    return body["text"]


def test_export_of_the_whole_case_by_command_and_button(slack, fake, db) -> None:
    case, blocks = approve(slack, fake, db, join=True)
    # One promise kept late and one missed, as the promises workflow records them.
    with db.session() as s:
        first = s.scalar(select(Promise))
        s.execute(
            update(Promise)
            .where(Promise.id == first.id)
            .values(status="kept", kept_at=first.due_at, kept_late=True)
        )
        s.add(
            Promise(
                incident_id=case.id,
                text="",
                due_at=first.due_at,
                status="missed",
                created_by=REPORTER,
                missed_at=first.due_at,
            )
        )
    assert log_apology(slack, case, reaction="部長から「今後は気をつけて」とのお言葉").body in (
        "",
        "null",
    )
    due = int(time.time()) + 86400
    assert save_plan(slack, case, [("送付前に二名で金額を確認する", REPORTER, due)]).body in (
        "",
        "null",
    )
    resp = slack.command(text=f"export {case.short_id}", user_id=REPORTER)
    assert resp.status == 200
    assert "エクスポート" in _ephemeral(fake, 1)
    md = wait_files(fake, REPORTER)[0]
    assert md["filename"] == "M-1-case.md"
    text = md["content"].decode()
    assert text.startswith("# M-1：株式会社サンプル 経理部")
    for needle in (
        "## 経過",
        "報告",
        "承認",
        "## 報告の版と判断",
        "第1版",
        "納品データの誤り",
        "経理部長",
        "訂正版を送付",
        "Jane Smith (U0MANAGER) が承認",
        "上司が謝罪に同行",
        "期限内に守った約束：0、遅れて守った約束：1、守れなかった約束：1（全 2 件）",
        "## 謝罪",
        "訪問",
        "今後は気をつけて",
        "## 再発防止策",
        "二重チェックの手順がなかった",
        "| 1 | 送付前に二名で金額を確認する | 田中 太郎 (U0REPORTER) |",
        "未完了",
    ):
        assert needle in text, needle
    # The manager exports from the button and gets it in English.
    click(slack, MANAGER, "export_case", str(case.id))
    assert "on its way" in _ephemeral(fake, 2)
    en = wait_files(fake, MANAGER)[0]["content"].decode()
    assert "## Timeline" in en and "Kept on time: 0, kept late: 1, missed: 1 (of 2)." in en
    assert "Visit in person" in en and "## Recurrence-prevention plan" in en
    # A double click gives one file.
    click(slack, MANAGER, "export_case", str(case.id))
    time.sleep(0.5)
    assert len(files_in(fake, MANAGER)) == 1
    assert buttons(blocks)["export_case"]["value"] == str(case.id)


def test_export_is_for_the_reporter_and_manager_only(slack, fake, db) -> None:
    case, _ = file_case(slack, fake, db)
    slack.command(text=f"export {case.short_id}", user_id=OTHER)
    assert "Only the reporter" in _ephemeral(fake, 1)
    click(slack, OTHER, "export_case", str(case.id))
    assert "Only the reporter" in _ephemeral(fake, 2)
    slack.command(text="export M-99", user_id=REPORTER)
    assert "見つかりません" in _ephemeral(fake, 3)
    slack.command(text="export", user_id=REPORTER)
    assert "/mistake export" in _ephemeral(fake, 4)
    time.sleep(0.3)
    assert fake.files == {}
    # Before approval the export is allowed (it is not an apology action).
    slack.command(text=f"export {case.short_id.lower()}", user_id=REPORTER)
    text = wait_files(fake, REPORTER)[0]["content"].decode()
    assert "この版への判断はありません" in text and "まだ記録されていません" in text

"""The apology phase, end to end: the sign-off gate (including forged payloads), letter and
memorandum drafts in both languages, saving and sharing them, logging the apology."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from bot.models import Apology, AuditEvent, Incident, LetterDraft, PreventionPlan
from tests.conftest import MANAGER, MANAGER_JA, OTHER, REPORTER
from tests.harness.apology import (
    SECTIONS,
    approve,
    file_case,
    inputs,
    log_apology,
    opened_view,
    own_bot,
    save_letter,
    save_plan,
    wait_files,
)
from tests.harness.botprocess import SIGNING_SECRET, BotProcess
from tests.harness.flows import all_text, buttons, click, dm
from tests.harness.slackrequests import SlackRequests

COMPANY = "株式会社ホウレンソウ"
GATED = ("draft_letter", "draft_memorandum", "apology_done", "prevention_plan", "close_case")


@pytest.fixture(scope="module")
def company_bot(fake_session, database_url) -> Iterator[BotProcess]:
    yield from own_bot(fake_session.api_url, database_url, COMPANY_NAME=COMPANY)


@pytest.fixture
def slack(company_bot, db, fake) -> SlackRequests:
    """This module's own bot (COMPANY_NAME set) instead of the shared one."""
    return SlackRequests(company_bot.url, SIGNING_SECRET, fake=fake)


@pytest.fixture
def cslack(slack) -> SlackRequests:
    return slack


def _count(db, model) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def _state(db, case) -> str:
    with db.session() as s:
        return s.get(Incident, case.id).state


def _refusal(fake, n: int) -> str:
    body = fake.wait_for_response(count=n)[n - 1].body
    assert body["response_type"] == "ephemeral" and body.get("replace_original") is False
    return body["text"]


def test_every_apology_action_waits_for_signoff_even_forged(slack, fake, db) -> None:
    case, report = file_case(slack, fake, db)
    # No button offers these yet; a forged click on each is refused and names the manager.
    assert not set(GATED) & set(buttons(report.params["blocks"]))
    for n, action in enumerate(GATED, start=1):
        click(slack, REPORTER, action, str(case.id))
        text = _refusal(fake, n)
        assert f"<@{MANAGER}>" in text and "承認待ち" in text and case.short_id in text, text
    # The manager is told it is their own sign-off that is missing.
    click(slack, MANAGER, "apology_done", str(case.id))
    assert "your own sign-off" in _refusal(fake, len(GATED) + 1)
    # Someone with no role is refused without learning more.
    click(slack, OTHER, "apology_done", str(case.id))
    assert "Only the reporter" in _refusal(fake, len(GATED) + 2)
    # Forged modal submissions are refused on a field, and nothing is stored.
    meta = json.dumps({"case": case.id, "kind": "letter", "lang": "ja"})
    values = {
        f"{name}_ja": {"value": {"type": "plain_text_input", "value": "x"}} for name in SECTIONS
    }
    resp = slack.view_submission(REPORTER, "horenso_letter", values, private_metadata=meta)
    assert f"<@{MANAGER}>" in resp.json["errors"]["opening_ja"]
    resp = log_apology(slack, case)
    assert "承認待ち" in resp.json["errors"]["apology_method"]
    resp = save_plan(slack, case, [("二名で確認する", REPORTER, int(time.time()) + 3600)])
    assert "承認待ち" in resp.json["errors"]["root_cause"]
    assert fake.count("views.open") == 0
    assert _count(db, LetterDraft) == _count(db, Apology) == _count(db, PreventionPlan) == 0
    assert _state(db, case) == "reported"
    # Garbage and unknown ids are refused too.
    click(slack, REPORTER, "draft_letter", "garbage")
    click(slack, REPORTER, "apology_done", "999999")
    assert len(fake.wait_for_response(count=len(GATED) + 4)) == len(GATED) + 4


def test_changes_requested_is_still_gated(slack, fake, db) -> None:
    case, report = file_case(slack, fake, db)
    value = buttons(report.params["blocks"])["approve"]["value"]
    click(slack, MANAGER, "request_changes", value)
    meta = fake.wait_for("views.open")[0].params["view"]["private_metadata"]
    slack.view_submission(
        MANAGER,
        "horenso_request_changes",
        {"comment": {"value": {"type": "plain_text_input", "value": "More detail"}}},
        private_metadata=meta,
    )
    dm(fake, REPORTER, lambda c: "修正依頼" in (c.params.get("text") or ""))
    click(slack, REPORTER, "draft_memorandum", str(case.id))
    assert f"<@{MANAGER}>" in _refusal(fake, 1)


def test_approved_notice_offers_the_apology_actions(slack, fake, db) -> None:
    case, blocks = approve(slack, fake, db)
    acts = buttons(blocks)
    assert set(acts) == {*GATED, "export_case"}
    assert {b["value"] for b in acts.values()} == {str(case.id)}
    text = all_text(blocks)
    for label in (
        "謝罪文を作成",
        "覚書を作成",
        "謝罪済み",
        "再発防止策",
        "案件を完了",
        "エクスポート",
    ):
        assert label in text


def test_japanese_letter_from_the_case_then_english_and_saved(cslack, fake, db) -> None:
    case, blocks = approve(cslack, fake, db, join=True)
    # A plan first, so the draft includes it.
    due = int(time.time()) + 7 * 86400
    assert save_plan(
        cslack, case, [("請求書は送付前に二名で金額を確認する", REPORTER, due)]
    ).body in (
        "",
        "null",
    )
    click(cslack, REPORTER, "draft_letter", buttons(blocks)["draft_letter"]["value"])
    view = opened_view(fake, "horenso_letter")
    assert view["title"]["text"] == "謝罪文の作成"
    sections = {k: b["element"]["initial_value"] for k, b in inputs(view).items()}
    assert list(sections) == [f"{s}_ja" for s in SECTIONS]
    assert all(len(v) <= 3000 for v in sections.values())
    assert all(b["element"]["max_length"] == 3000 for b in inputs(view).values())
    opening = sections["opening_ja"]
    assert "件名" in opening and "拝啓" in opening and "株式会社サンプル 経理部 御中" in opening
    assert COMPANY in opening and "営業部 田中 太郎" in opening and "年" in opening
    assert COMPANY in sections["apology_ja"] and "お詫び申し上げます" in sections["apology_ja"]
    facts = sections["facts_ja"]
    assert "納品データの誤り" in facts and "訂正版を送付" in facts and "二重チェック" in facts
    assert "請求書は送付前に二名で金額を確認する" in sections["measures_ja"]
    assert sections["closing_ja"].rstrip().endswith("敬具")
    # Switch the language in the modal: the sections are rewritten in English.
    cslack.block_action(
        REPORTER,
        "letter_language",
        action_type="static_select",
        selected="en",
        block_id="letter_language",
        view={"id": view["id"], "hash": view["hash"], "private_metadata": view["private_metadata"]},
    )
    updated = fake.wait_for("views.update", lambda c: c.ok)[0].response["view"]
    en = {k: b["element"]["initial_value"] for k, b in inputs(updated).items()}
    assert list(en) == [f"{s}_en" for s in SECTIONS]
    assert "Subject:" in en["opening_en"] and "Dear 株式会社サンプル 経理部," in en["opening_en"]
    assert "田中 太郎, 営業部" in en["opening_en"] and f"On behalf of {COMPANY}" in en["apology_en"]
    assert "Yours sincerely," in en["closing_en"] and "納品データの誤り" in en["facts_en"]
    # Save: a version is stored and the file goes to both DMs.
    edited = en["closing_en"].replace(
        "Yours sincerely,", "With our sincere apologies,\n\nYours sincerely,"
    )
    resp = save_letter(cslack, updated, {"closing": edited})
    assert resp.status == 200 and resp.body in ("", "null"), resp.body
    mine, theirs = wait_files(fake, REPORTER)[0], wait_files(fake, MANAGER)[0]
    content = mine["content"].decode()
    assert "With our sincere apologies" in content and "Subject:" in content
    assert theirs["content"] == mine["content"] and mine["filename"] == "M-1-letter-v1-en.md"
    assert (
        "version 1" in theirs["initial_comment"] and f"<@{REPORTER}>" in theirs["initial_comment"]
    )
    assert "第1版" in mine["initial_comment"]
    # A retry of the same submission stores nothing new; a second save is version 2.
    save_letter(cslack, updated, {"closing": edited})
    time.sleep(0.5)
    assert len(fake.files) == 2
    resp = save_letter(cslack, updated, view_id="VSECONDSAVE")
    wait_files(fake, MANAGER, count=2)
    with db.session() as s:
        drafts = list(s.scalars(select(LetterDraft).order_by(LetterDraft.version)))
        assert [(d.kind, d.language, d.version) for d in drafts] == [
            ("letter", "en", 1),
            ("letter", "en", 2),
        ]
        assert len(drafts[0].file_ids) == 2 and drafts[0].sections["closing"] == edited
        actions = list(
            s.scalars(select(AuditEvent.action).where(AuditEvent.incident_id == case.id))
        )
    assert actions.count("letter_saved") == 2


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_memorandum_in_both_languages_fits_slack_limits(cslack, fake, db, lang) -> None:
    long = "10:05 請求書の誤りに気づきました。" * 150  # 3000 characters of timeline
    case, _ = approve(
        cslack,
        fake,
        db,
        reporter=OTHER if lang == "en" else REPORTER,
        manager=MANAGER_JA,
        timeline=long[:3000],
        countermeasure="x" * 3000,
    )
    reporter = case.reporter_id
    click(cslack, reporter, "draft_memorandum", str(case.id))
    view = opened_view(fake, "horenso_letter")
    sections = {k: b["element"]["initial_value"] for k, b in inputs(view).items()}
    assert all(0 < len(v) <= 3000 for v in sections.values())
    if lang == "ja":
        assert view["title"]["text"] == "覚書の作成"
        assert (
            sections["opening_ja"].startswith("覚書")
            and "（以下「甲」という。）" in sections["opening_ja"]
        )
        assert (
            "第1条（謝罪）" in sections["apology_ja"]
            and "第3条（再発防止策）" in sections["measures_ja"]
        )
        assert "改めて" not in sections["measures_ja"]  # the no-plan wording is the memo's own
        assert (
            "書面で報告" in sections["measures_ja"]
            and "甲：株式会社サンプル" in sections["closing_ja"]
        )
    else:
        assert view["title"]["text"] == "Memorandum"
        assert (
            sections["opening_en"].startswith("MEMORANDUM")
            and '("the Client")' in sections["opening_en"]
        )
        assert (
            "1. Apology" in sections["apology_en"]
            and "3. Prevention of recurrence" in sections["measures_en"]
        )
        assert "Other Person" in sections["closing_en"]
    resp = save_letter(cslack, view, actor=reporter)
    assert resp.body in ("", "null"), resp.body
    wait_files(fake, reporter)
    wait_files(fake, MANAGER_JA)
    with db.session() as s:
        draft = s.scalar(select(LetterDraft))
        assert (draft.kind, draft.language, draft.version) == ("memorandum", lang, 1)
    fake.assert_no_violations()


def test_only_the_reporter_drafts(slack, fake, db) -> None:
    case, _ = approve(slack, fake, db)
    click(slack, MANAGER, "draft_letter", str(case.id))
    assert "Only the person who reported" in _refusal(fake, 1)
    click(slack, OTHER, "draft_memorandum", str(case.id))
    assert "Only the person who reported" in _refusal(fake, 2)
    assert fake.count("views.open") == 0


def test_apology_done_moves_the_case_and_tells_the_manager(slack, fake, db) -> None:
    case, blocks = approve(slack, fake, db, join=True)
    click(slack, REPORTER, "apology_done", buttons(blocks)["apology_done"]["value"])
    view = opened_view(fake, "horenso_apology")
    attendees = inputs(view)["attendees"]["element"]["initial_users"]
    assert attendees == [REPORTER, MANAGER]  # the manager said they would come
    methods = [o["value"] for o in inputs(view)["apology_method"]["element"]["options"]]
    assert methods == ["visit", "phone", "video", "email"]
    # A time in the future is refused on its field.
    resp = log_apology(slack, case, at=int(time.time()) + 7200, attendees=[REPORTER, MANAGER])
    assert "未来" in resp.json["errors"]["apology_at"]
    at = int(time.time()) - 1800
    resp = log_apology(slack, case, at=at, attendees=[REPORTER, MANAGER], view_id="VAPOLOGY1")
    assert resp.status == 200 and resp.body in ("", "null"), resp.body
    told = dm(fake, MANAGER, lambda c: "logged the apology" in (c.params.get("text") or ""))[0]
    text = all_text(told.params["blocks"])
    assert "Visit in person" in text and "謝罪を受け入れて" in text and f"<@{REPORTER}>" in text
    assert "No recurrence-prevention plan yet" in text
    assert {"prevention_plan", "close_case", "export_case"} == set(buttons(told.params["blocks"]))
    # A retried submission changes nothing; another apology is refused.
    log_apology(slack, case, at=at, attendees=[REPORTER, MANAGER], view_id="VAPOLOGY1")
    resp = log_apology(slack, case, actor=MANAGER, method="phone")
    assert "already been logged" in resp.json["errors"]["apology_method"]
    time.sleep(0.5)
    with db.session() as s:
        incident = s.get(Incident, case.id)
        apology = s.scalar(select(Apology))
        assert incident.state == "apologised" and int(incident.apologised_at.timestamp()) == at
        assert apology.method == "visit" and apology.attendees == [REPORTER, MANAGER]
        assert s.scalar(select(func.count()).select_from(Apology)) == 1
    assert len(dm(fake, MANAGER, lambda c: "logged the apology" in c.params.get("text", ""))) == 1
    # The modal is refused once the apology is logged.
    click(slack, REPORTER, "apology_done", str(case.id))
    assert "すでに記録" in _refusal(fake, 1)


def test_manager_logging_the_apology_tells_the_reporter(slack, fake, db) -> None:
    case, _ = approve(slack, fake, db)
    resp = log_apology(slack, case, actor=MANAGER, method="phone", reaction="They accepted.")
    assert resp.body in ("", "null"), resp.body
    told = dm(fake, REPORTER, lambda c: "謝罪を記録" in (c.params.get("text") or ""))[0]
    assert "電話" in all_text(told.params["blocks"])
    assert _state(db, case) == "apologised"

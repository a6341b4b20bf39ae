"""The blame and excuse check: the labelled table, quotations, and the three policies through
the report modal and the letter drafts."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.models import Incident, LetterDraft, ReportVersion
from bot.workflow import blame
from tests.conftest import MANAGER, REPORTER
from tests.harness.apology import approve, inputs, opened_view, own_bot, save_letter, wait_files
from tests.harness.botprocess import SIGNING_SECRET, BotProcess
from tests.harness.flows import all_text, click, dm, submit
from tests.harness.slackrequests import SlackRequests

TABLE = Path(__file__).parent / "data" / "blame_table.csv"
BLAMING = "先方の担当者のせいで請求書の確認が遅れました。"
QUOTED = "先方の部長は「御社のせいで決算に間に合わない」とおっしゃっています。"


def test_table_precision_and_recall_per_language() -> None:
    rows = list(csv.DictReader(TABLE.open(encoding="utf-8")))
    for lang in ("ja", "en"):
        mine = [r for r in rows if r["lang"] == lang]
        assert len(mine) >= 40
        assert {r["category"] for r in mine} == {"blame", "excuse", "denial", "neutral", "quoted"}
        tp = sum(1 for r in mine if r["label"] == "1" and blame.check(r["text"]))
        fp = sum(1 for r in mine if r["label"] == "0" and blame.check(r["text"]))
        fn = sum(1 for r in mine if r["label"] == "1" and not blame.check(r["text"]))
        assert tp / (tp + fp) >= 0.9 and tp / (tp + fn) >= 0.9, (lang, tp, fp, fn)


@pytest.mark.parametrize(
    "text",
    [
        "「御社のせいだ」と言われました。",
        "『仕方ないでは済まない』とのことです。",
        'He said "it\'s not my fault".',
        "She said “nobody told me”.",
    ],
)
def test_quoted_words_never_trigger(text) -> None:
    assert blame.check(text) == []


def test_findings_name_the_phrase_and_kind() -> None:
    found = blame.check("言い訳になりますが、先方のせいで遅れました。")
    assert [(f.kind, f.match) for f in found] == [
        ("excuse", "言い訳になりますが"),
        ("blame", "のせい"),
    ]
    errors = blame.field_errors({"timeline": "It wasn't me.", "countermeasure": "I will fix it."})
    assert errors == {"timeline": ("blame.block.denial", {"phrase": "It wasn't me"})}
    assert blame.rules().rules and blame.RULES_FILE.suffix == ".json"


def _versions(db) -> list[ReportVersion]:
    with db.session() as s:
        return list(s.scalars(select(ReportVersion)))


def test_warn_accepts_flags_the_manager_and_notes_the_reporter(slack, fake, db) -> None:
    resp = submit(slack, REPORTER, MANAGER, timeline=BLAMING, client_situation=QUOTED)
    assert "errors" not in resp.body
    report = dm(fake, MANAGER)[0]
    text = all_text(report.params["blocks"])
    assert (
        "Possible blame or excuse wording" in text and "のせい" in text and "shifting blame" in text
    )
    receipt = dm(fake, REPORTER)[0]
    assert "責任転嫁や言い訳" in all_text(receipt.params["blocks"])
    [version] = _versions(db)
    assert version.blame_flags == [
        {"field": "timeline", "rule": "ja.no_sei", "kind": "blame", "match": "のせい"}
    ]


def test_warn_without_findings_shows_nothing(slack, fake, db) -> None:
    submit(slack, REPORTER, MANAGER, client_situation=QUOTED)
    assert "Possible blame" not in all_text(dm(fake, MANAGER)[0].params["blocks"])
    assert _versions(db)[0].blame_flags == []


@pytest.fixture(scope="module")
def warn_bot(fake_session, database_url) -> Iterator[BotProcess]:
    yield from own_bot(fake_session.api_url, database_url, BLAME_POLICY="warn")


@pytest.fixture
def slack(warn_bot, db, fake) -> SlackRequests:
    """This module's own bot with BLAME_POLICY=warn (the default), stopped with the module."""
    return SlackRequests(warn_bot.url, SIGNING_SECRET, fake=fake)


@pytest.fixture(scope="module")
def block_bot(fake_session, database_url) -> Iterator[BotProcess]:
    yield from own_bot(fake_session.api_url, database_url, BLAME_POLICY="block")


@pytest.fixture(scope="module")
def off_bot(fake_session, database_url) -> Iterator[BotProcess]:
    yield from own_bot(fake_session.api_url, database_url, BLAME_POLICY="off")


def test_block_explains_and_suggests_a_rewording(block_bot, db, fake) -> None:
    slack = SlackRequests(block_bot.url, SIGNING_SECRET, fake=fake)
    resp = submit(
        slack,
        REPORTER,
        MANAGER,
        timeline=BLAMING,
        countermeasure="仕方なかったので、明日訂正します。",
    )
    errors = resp.json["errors"]
    assert (
        "「のせい」" in errors["timeline"]
        and "責任転嫁" in errors["timeline"]
        and "例" in errors["timeline"]
    )
    assert "言い訳" in errors["countermeasure"]
    assert "client_situation" not in errors
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Incident)) == 0
    # The client's own words, quoted, go through.
    resp = submit(slack, REPORTER, MANAGER, client_situation=QUOTED)
    assert "errors" not in resp.body
    assert _versions(db)[0].blame_flags == []


def test_block_applies_to_letter_drafts(block_bot, db, fake) -> None:
    slack = SlackRequests(block_bot.url, SIGNING_SECRET, fake=fake)
    case, _ = approve(slack, fake, db)
    click(slack, REPORTER, "draft_letter", str(case.id))
    view = opened_view(fake, "horenso_letter")
    resp = save_letter(slack, view, {"apology": "今回の件は、配送業者のせいで起きました。"})
    assert "責任転嫁" in resp.json["errors"]["apology_ja"]
    resp = save_letter(slack, view, {"closing": "私は悪くないと考えております。"})
    assert "責任の否定" in resp.json["errors"]["closing_ja"]
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(LetterDraft)) == 0
    # The draft as rendered from the case passes its own check.
    assert save_letter(slack, view).body in ("", "null")
    wait_files(fake, MANAGER)


def test_warn_flags_a_letter_for_the_manager(slack, fake, db) -> None:
    case, _ = approve(slack, fake, db)
    click(slack, REPORTER, "draft_letter", str(case.id))
    view = opened_view(fake, "horenso_letter")
    assert all(not blame.check(b["element"]["initial_value"]) for b in inputs(view).values())
    save_letter(slack, view, {"facts": "言い訳になりますが、繁忙期でした。"})
    manager_file = wait_files(fake, MANAGER)[0]
    assert "Possible blame or excuse wording" in manager_file["initial_comment"]
    assert "言い訳になりますが" in manager_file["initial_comment"]
    assert "注意" in wait_files(fake, REPORTER)[0]["initial_comment"]
    with db.session() as s:
        draft = s.scalar(select(LetterDraft))
        assert [f["field"] for f in draft.blame_flags] == ["facts"]


def test_off_checks_nothing(off_bot, db, fake) -> None:
    slack = SlackRequests(off_bot.url, SIGNING_SECRET, fake=fake)
    resp = submit(slack, REPORTER, MANAGER, timeline=BLAMING)
    assert "errors" not in resp.body
    assert "Possible blame" not in json.dumps(dm(fake, MANAGER)[0].params["blocks"])
    assert _versions(db)[0].blame_flags == []

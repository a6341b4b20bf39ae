"""`/mistake`: the report modal in the reader's language and zone, prefills, reserved words,
`help`, and the one cached `users.info` per person."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.db import Database
from bot.models import UserSetting
from bot.types import utcnow
from tests.conftest import MANAGER, MANAGER_JA, REPORTER
from tests.harness.fakeslack import FakeSlack
from tests.harness.flows import submit
from tests.harness.slackrequests import Response, SlackRequests


def _blocks(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["block_id"]: b for b in view["blocks"] if b.get("block_id")}


def _open_modal(slack: SlackRequests, fake: FakeSlack, user_id: str, text: str = "") -> dict:
    resp = slack.command(text=text, user_id=user_id)
    assert resp.status == 200
    call = fake.wait_for("views.open", lambda c: c.params["trigger_id"] == resp.trigger_id)[0]
    assert call.ok, fake.summary()
    return call.params["view"]


def _response_to(fake: FakeSlack, resp: Response) -> dict[str, Any]:
    assert resp.response_url is not None
    rid = resp.response_url.rsplit("/", 1)[1]
    return fake.wait_for_response(lambda r: r.id == rid)[0].body


def _fresh_user(fake: FakeSlack, **kwargs: Any) -> str:
    """A user no test has seen: nothing cached in the bot's memory or in the database."""
    user_id = "U0FRESH" + uuid.uuid4().hex[:8].upper()
    fake.add_user(user_id, **kwargs)
    return user_id


def test_english_user_gets_the_modal_in_english_with_london_time(
    slack: SlackRequests, fake: FakeSlack
) -> None:
    view = _open_modal(slack, fake, MANAGER)
    assert view["title"]["text"] == "Report a mistake"
    assert view["type"] == "modal"
    blocks = _blocks(view)
    assert blocks["timeline"]["hint"]["text"].startswith("Facts in time order")
    assert "Ask the client concretely" in blocks["client_situation"]["hint"]["text"]
    assert "signs off" in blocks["manager"]["hint"]["text"]
    hint = blocks["next_contact"]["hint"]["text"]
    assert hint.startswith("Tell the client")
    contact = datetime.fromtimestamp(blocks["next_contact"]["element"]["initial_date_time"], UTC)
    london = contact.astimezone(ZoneInfo("Europe/London"))
    tokyo = contact.astimezone(ZoneInfo("Asia/Tokyo"))
    assert f"{london:%H:%M}" in hint
    assert f"{tokyo:%H:%M}" not in hint
    assert london.tzname() in hint  # GMT or BST, as a Londoner reads it
    assert not any("\u3040" <= ch <= "\u30ff" for ch in str(view)), "kana in an English modal"


def test_japanese_user_gets_the_modal_in_japanese_with_tokyo_time(
    slack: SlackRequests, fake: FakeSlack
) -> None:
    view = _open_modal(slack, fake, REPORTER)
    assert view["title"]["text"] == "ミスの報告"
    blocks = _blocks(view)
    assert "時系列" in blocks["timeline"]["hint"]["text"]
    assert "上司" in blocks["manager"]["hint"]["text"]
    hint = blocks["next_contact"]["hint"]["text"]
    contact = datetime.fromtimestamp(blocks["next_contact"]["element"]["initial_date_time"], UTC)
    assert f"{contact.astimezone(ZoneInfo('Asia/Tokyo')):%H:%M}" in hint
    assert "までにご連絡します" in hint


def test_manager_chosen_last_time_is_prefilled(
    slack: SlackRequests, fake: FakeSlack, db: Database
) -> None:
    reporter = _fresh_user(fake)
    view = _open_modal(slack, fake, reporter)
    assert "initial_user" not in _blocks(view)["manager"]["element"]
    # Filing a report remembers the manager chosen in it (in the database and in this
    # process's short-lived prefill cache).
    assert submit(slack, reporter, MANAGER_JA).status == 200
    with db.session() as s:
        assert s.get(UserSetting, reporter).default_manager_id == MANAGER_JA  # type: ignore[union-attr]
    view = _open_modal(slack, fake, reporter)
    assert _blocks(view)["manager"]["element"]["initial_user"] == MANAGER_JA


def test_manager_prefill_from_a_row_written_before_the_profile(
    slack: SlackRequests, fake: FakeSlack, db: Database
) -> None:
    """A settings row without a fetched profile: the profile is fetched, the choice kept."""
    user_id = _fresh_user(fake, locale="en-US", tz="America/New_York", tz_offset=-18000)
    with db.session() as s:
        s.add(UserSetting(user_id=user_id, default_manager_id=MANAGER, updated_at=utcnow()))
    view = _open_modal(slack, fake, user_id)
    assert _blocks(view)["manager"]["element"]["initial_user"] == MANAGER
    assert view["title"]["text"] == "Report a mistake"
    with db.session() as s:
        assert s.get(UserSetting, user_id).default_manager_id == MANAGER  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "client"),
    [
        ("株式会社サンプル", "株式会社サンプル"),
        ("  Acme Ltd  ", "Acme Ltd"),
        ("helpdesk corp", "helpdesk corp"),  # starts like a reserved word, is not one
        ("Listening Post Inc", "Listening Post Inc"),
        ("AT&amp;T &lt;Japan&gt;", "AT&T <Japan>"),  # Slack escapes &, < and > in the text
    ],
)
def test_client_is_prefilled_from_the_command_text(
    slack: SlackRequests, fake: FakeSlack, text: str, client: str
) -> None:
    view = _open_modal(slack, fake, REPORTER, text=text)
    assert _blocks(view)["client"]["element"]["initial_value"] == client


def test_no_text_means_no_client_prefill(slack: SlackRequests, fake: FakeSlack) -> None:
    view = _open_modal(slack, fake, REPORTER)
    assert "initial_value" not in _blocks(view)["client"]["element"]


@pytest.mark.parametrize("text", ["list", "status 12", "promise", "promise 3", "export 7", "LIST"])
def test_reserved_words_do_not_open_a_modal(
    slack: SlackRequests, fake: FakeSlack, text: str
) -> None:
    resp = slack.command(text=text, user_id=MANAGER)
    assert resp.status == 200
    body = _response_to(fake, resp)
    assert body.get("response_type") == "ephemeral"
    assert body["text"]  # each subcommand answers privately (here: no case of this user's)
    time.sleep(0.3)
    assert fake.count("views.open") == 0


@pytest.mark.parametrize(
    ("user_id", "expected", "foreign"),
    [(REPORTER, "使い方", "How to use"), (MANAGER, "How to use Horenso", "使い方")],
    ids=["ja", "en"],
)
def test_help_answers_ephemerally_in_the_users_language(
    slack: SlackRequests, fake: FakeSlack, user_id: str, expected: str, foreign: str
) -> None:
    resp = slack.command(text="help", user_id=user_id)
    assert resp.status == 200
    body = _response_to(fake, resp)
    assert body.get("response_type") == "ephemeral"
    rendered = body["text"] + str(body.get("blocks", ""))
    assert expected in rendered
    assert foreign not in rendered
    assert "/mistake" in rendered
    time.sleep(0.3)
    assert fake.count("views.open") == 0


def test_help_is_case_insensitive(slack: SlackRequests, fake: FakeSlack) -> None:
    resp = slack.command(text="HELP", user_id=MANAGER)
    assert "How to use Horenso" in _response_to(fake, resp)["text"]


def test_profile_is_fetched_once_with_locale_and_cached(
    slack: SlackRequests, fake: FakeSlack
) -> None:
    user_id = _fresh_user(fake, locale="en-GB", tz="Europe/London", tz_offset=0)
    first = _open_modal(slack, fake, user_id)
    second = _open_modal(slack, fake, user_id, text="Acme")
    resp = slack.command(text="help", user_id=user_id)
    _response_to(fake, resp)
    calls = [c for c in fake.calls_to("users.info") if c.params.get("user") == user_id]
    assert len(calls) == 1, fake.summary()
    assert calls[0].params.get("include_locale") in ("1", "true", True)
    assert first["title"]["text"] == second["title"]["text"] == "Report a mistake"


def test_unknown_slack_locale_falls_back_to_the_default_locale(
    slack: SlackRequests, fake: FakeSlack
) -> None:
    user_id = _fresh_user(fake, locale="fr-FR", tz="Europe/Paris", tz_offset=3600)
    view = _open_modal(slack, fake, user_id)
    assert view["title"]["text"] == "ミスの報告"  # DEFAULT_LOCALE is ja
    hint = _blocks(view)["next_contact"]["hint"]["text"]
    contact = datetime.fromtimestamp(
        _blocks(view)["next_contact"]["element"]["initial_date_time"], UTC
    )
    assert f"{contact.astimezone(ZoneInfo('Europe/Paris')):%H:%M}" in hint  # still Paris time
    resp = slack.command(text="help", user_id=user_id)
    assert "使い方" in _response_to(fake, resp)["text"]

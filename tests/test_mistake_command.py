"""`/mistake` opens the report modal in the user's language and time zone, and `help`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.conftest import REPORTER


def _blocks(view: dict) -> dict:
    return {b.get("block_id"): b for b in view["blocks"] if b.get("block_id")}


def test_opens_modal_in_japanese_with_defaults(slack, fake) -> None:
    before = datetime.now(UTC)
    resp = slack.command(text="株式会社サンプル", user_id=REPORTER)
    assert resp.status == 200
    call = fake.wait_for("views.open")[0]
    view = call.params["view"]
    assert view["title"]["text"] == "ミスの報告"
    blocks = _blocks(view)
    assert blocks["client"]["element"]["initial_value"] == "株式会社サンプル"
    contact = datetime.fromtimestamp(blocks["next_contact"]["element"]["initial_date_time"], UTC)
    assert timedelta(minutes=28) < contact - before < timedelta(minutes=31)
    local = contact.astimezone(__import__("zoneinfo").ZoneInfo("Asia/Tokyo"))
    assert f"{local:%H:%M}" in blocks["next_contact"]["hint"]["text"]
    assert {
        "timeline",
        "client_situation",
        "countermeasure",
        "manager",
        "severity",
        "noticed_at",
    } <= set(blocks)
    assert "時系列" in blocks["timeline"]["hint"]["text"]
    assert [c.params.get("include_locale") for c in fake.calls_to("users.info")] in (["1"], [])

"""Steps of the report and sign-off flow, as a person does them through Slack."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from sqlalchemy import select

from bot.db import Database
from bot.models import Incident
from tests.harness.fakeslack import FakeSlack
from tests.harness.slackrequests import (
    Response,
    SlackRequests,
    datetime_,
    plain,
    user,
)
from tests.harness.slackrequests import (
    select as sel,
)

TIMELINE = "10:05 納品データの誤りに気づきました。9:00に送付した請求書の金額が桁違いでした。"
SITUATION = (
    "先方の経理部長が、支払い処理を止めなければならず怒っています。今日中の訂正版を求めています。"
)
COUNTERMEASURE = "本日15時までに訂正版を送付し、送付前に二名で金額を確認します。"


def report_values(manager: str, *, next_contact: int | None = None, **overrides: Any) -> dict:
    now = int(time.time())
    fields = {
        "client": plain(overrides.get("client", "株式会社サンプル 経理部")),
        "severity": sel(overrides.get("severity", "major")),
        "noticed_at": datetime_(overrides.get("noticed_at", now - 600)),
        "timeline": plain(overrides.get("timeline", TIMELINE)),
        "client_situation": plain(overrides.get("client_situation", SITUATION)),
        "countermeasure": plain(overrides.get("countermeasure", COUNTERMEASURE)),
        "manager": user(manager),
        "next_contact": datetime_(next_contact if next_contact is not None else now + 1800),
    }
    for key in overrides.get("drop", ()):
        fields.pop(key)
    return {block: {"value": element} for block, element in fields.items()}


def submit(
    slack: SlackRequests,
    reporter: str,
    manager: str,
    *,
    view_id: str | None = None,
    private_metadata: str = "{}",
    **overrides: Any,
) -> Response:
    values = report_values(manager, **overrides)
    if overrides.get("edit"):
        values.pop("next_contact")
    return slack.view_submission(
        reporter,
        "horenso_report",
        values,
        private_metadata=private_metadata,
        view_id=view_id or "V" + uuid.uuid4().hex[:10].upper(),
    )


def only_case(db: Database) -> Incident:
    with db.session() as s:
        cases = list(s.scalars(select(Incident)))
    assert len(cases) == 1, cases
    return cases[0]


def dm(
    fake: FakeSlack, user_id: str, predicate: Any = None, count: int = 1, timeout: float = 5.0
) -> list:
    """Messages posted to a user's DM (chat.postMessage to D<user>)."""
    return fake.wait_for(
        "chat.postMessage",
        lambda c: (
            c.ok
            and c.params.get("channel") == f"D{user_id}"
            and (predicate is None or predicate(c))
        ),
        count=count,
        timeout=timeout,
    )


def buttons(blocks: list[dict]) -> dict[str, dict]:
    return {
        el["action_id"]: el
        for b in blocks
        if b.get("type") == "actions"
        for el in b.get("elements", [])
    }


def all_text(blocks: list[dict] | None) -> str:
    return json.dumps(blocks or [], ensure_ascii=False)


def click(
    slack: SlackRequests, user_id: str, action_id: str, value: str, channel: str | None = None
) -> Response:
    return slack.block_action(
        user_id,
        action_id,
        value=value,
        container={"type": "message", "channel_id": channel or "D0", "message_ts": "1.0"},
        channel_id=channel or "D0",
    )

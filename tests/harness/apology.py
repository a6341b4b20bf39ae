"""Steps of the apology phase, as people do them through Slack (issue 5)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select

from bot.db import Database
from bot.models import Incident
from tests.conftest import MANAGER, REPORTER
from tests.harness.botprocess import BotProcess
from tests.harness.fakeslack import FakeSlack
from tests.harness.flows import buttons, click, dm, only_case, submit
from tests.harness.slackrequests import (
    Response,
    SlackRequests,
    datetime_,
    plain,
    radio,
    user,
    users,
)

SECTIONS = ("opening", "apology", "facts", "measures", "closing")


def own_bot(api_url: str, database_url: str, **env: str) -> Iterator[BotProcess]:
    """A bot process for one test module (its own settings), stopped when the module ends,
    so no bot keeps sweeping the shared database while later modules run theirs."""
    bot = BotProcess(api_url, database_url, **env).start()
    yield bot
    bot.stop()


def file_case(
    slack: SlackRequests,
    fake: FakeSlack,
    db: Database,
    reporter: str = REPORTER,
    manager: str = MANAGER,
    **kw: Any,
) -> tuple[Incident, Any]:
    """File a case; return it and the manager's report message."""
    resp = submit(slack, reporter, manager, **kw)
    assert resp.status == 200 and "errors" not in resp.body, resp.body
    with db.session() as s:
        case = s.scalars(select(Incident).order_by(Incident.id.desc())).first()
    report = dm(fake, manager, lambda c: case.short_id in (c.params.get("text") or ""))[0]
    return case, report


def approve(
    slack: SlackRequests,
    fake: FakeSlack,
    db: Database,
    *,
    join: bool = False,
    reporter: str = REPORTER,
    manager: str = MANAGER,
    **kw: Any,
) -> tuple[Incident, list[dict]]:
    """File and approve a case; return it and the decision notice's blocks (with its buttons)."""
    case, report = file_case(slack, fake, db, reporter, manager, **kw)
    value = buttons(report.params["blocks"])["approve"]["value"]
    click(slack, manager, "approve_join" if join else "approve", value)
    notice = dm(
        fake,
        reporter,
        lambda c: (
            case.short_id in c.params.get("text", "")
            and any(b.get("block_id") == "case_actions" for b in c.params.get("blocks") or [])
        ),
    )[0]
    with db.session() as s:
        case = s.get(Incident, case.id)
    assert case.state == "approved"
    return case, notice.params["blocks"]


def opened_view(fake: FakeSlack, callback_id: str, count: int = 1) -> dict:
    calls = fake.wait_for(
        "views.open", lambda c: c.ok and c.params["view"].get("callback_id") == callback_id, count
    )
    return calls[-1].response["view"]


def inputs(view: dict) -> dict[str, dict]:
    return {b["block_id"]: b for b in view["blocks"] if b.get("type") == "input"}


def save_letter(
    slack: SlackRequests,
    view: dict,
    texts: dict[str, str] | None = None,
    actor: str = REPORTER,
    view_id: str | None = None,
) -> Response:
    """Submit the draft modal as shown (or with some sections replaced)."""
    lang = json.loads(view["private_metadata"])["lang"]
    blocks = inputs(view)
    values = {}
    for name in SECTIONS:
        block = f"{name}_{lang}"
        text = (texts or {}).get(name, blocks[block]["element"].get("initial_value", ""))
        values[block] = {"value": plain(text)}
    return slack.view_submission(
        actor,
        "horenso_letter",
        values,
        private_metadata=view["private_metadata"],
        view_id=view_id or view["id"],
    )


def log_apology(
    slack: SlackRequests,
    case: Incident,
    actor: str = REPORTER,
    *,
    method: str = "visit",
    at: int | None = None,
    attendees: list[str] | None = None,
    reaction: str = "先方の部長は謝罪を受け入れてくださいました。",
    view_id: str | None = None,
) -> Response:
    values = {
        "apology_method": {"value": radio(method)},
        "apology_at": {"value": datetime_(at if at is not None else int(time.time()) - 600)},
        "attendees": {"value": users(attendees or [actor])},
        "client_reaction": {"value": plain(reaction)},
    }
    return slack.view_submission(
        actor,
        "horenso_apology",
        values,
        private_metadata=json.dumps({"case": case.id}),
        view_id=view_id or "V" + uuid.uuid4().hex[:10].upper(),
    )


def save_plan(
    slack: SlackRequests,
    case: Incident,
    measures: list[tuple[str, str, int]],
    actor: str = REPORTER,
    root_cause: str = "送付前の金額確認が一人に任されており、二重チェックの手順がなかった。",
    view_id: str | None = None,
) -> Response:
    """measures: (what, owner, due epoch) per row; the rest of the five rows stay empty."""
    values: dict[str, Any] = {"root_cause": {"value": plain(root_cause)}}
    for n in range(1, 6):
        if n <= len(measures):
            what, owner, due = measures[n - 1]
            values[f"measure_{n}_what"] = {"value": plain(what)}
            values[f"measure_{n}_owner"] = {"value": user(owner)}
            values[f"measure_{n}_due"] = {"value": datetime_(due)}
        else:
            values[f"measure_{n}_what"] = {"value": plain(None)}
            values[f"measure_{n}_owner"] = {"value": user(None)}
            values[f"measure_{n}_due"] = {"value": datetime_(None)}
    return slack.view_submission(
        actor,
        "horenso_plan",
        values,
        private_metadata=json.dumps({"case": case.id}),
        view_id=view_id or "V" + uuid.uuid4().hex[:10].upper(),
    )


def files_in(fake: FakeSlack, user_id: str) -> list[dict]:
    return [f for f in list(fake.files.values()) if f["channel_id"] == f"D{user_id}"]


def wait_files(fake: FakeSlack, user_id: str, count: int = 1, timeout: float = 5.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        found = files_in(fake, user_id)
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"expected {count} file(s) in {user_id}'s DM\n{fake.summary()}")
        time.sleep(0.02)


__all__ = ["buttons", "click", "dm", "only_case"]

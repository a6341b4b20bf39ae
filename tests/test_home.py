"""App Home: each person's open cases with their next promised contact, and pending sign-offs."""

from __future__ import annotations

import json

from tests.conftest import MANAGER, REPORTER, wait_until_quiet
from tests.harness.flows import dm, submit


def _home(slack, fake, user: str) -> str:
    before = fake.count("views.publish")
    slack.event({"type": "app_home_opened", "user": user, "tab": "home"})
    call = fake.wait_for("views.publish", count=before + 1)[-1]
    assert call.params["user_id"] == user and call.params["view"]["type"] == "home"
    return json.dumps(call.params["view"], ensure_ascii=False)


def test_home_shows_open_cases_deadlines_and_pending_signoffs(slack, fake, db) -> None:
    empty = _home(slack, fake, REPORTER)
    assert "ありません" in empty
    submit(slack, REPORTER, MANAGER, client="<!channel> 株式会社ホーム")
    dm(fake, MANAGER)
    mine = _home(slack, fake, REPORTER)
    assert "M-1" in mine and "上司の判断待ち" in mine and "次回連絡の約束" in mine
    assert "&lt;!channel&gt;" in mine and "<!channel>" not in mine
    waiting = _home(slack, fake, MANAGER)
    assert "Reports waiting for your sign-off" in waiting and "M-1" in waiting
    # The "messages" tab of App Home publishes nothing.
    slack.event({"type": "app_home_opened", "user": MANAGER, "tab": "messages"})
    wait_until_quiet(fake)
    assert fake.count("views.publish") == 3

"""Socket Mode is chosen when SLACK_APP_TOKEN is set; /healthz is still served on PORT."""

from __future__ import annotations

from tests.harness.botprocess import BotProcess
from tests.harness.slackrequests import SlackRequests


def test_socket_mode_serves_healthz_and_keeps_trying_to_connect(fake, db, database_url) -> None:
    bot = BotProcess(
        fake.api_url, database_url, SLACK_APP_TOKEN="xapp-1-A0001-test", SLACK_SIGNING_SECRET=""
    ).start()
    try:
        client = SlackRequests(bot.url, "unused", fake=fake)
        assert client.get("/healthz").status == 200
        # It asked Slack for a Socket Mode URL (the fake refuses it) and keeps retrying.
        fake.wait_for("apps.connections.open", count=2, timeout=10)
        # No HTTP events in Socket Mode: signed or not, /slack/events is refused.
        assert client.command(text="help", user_id="U0REPORTER").status == 401
        assert client.get("/healthz").status == 200
        assert "Traceback" not in bot.output()
    finally:
        bot.stop()
    assert "xapp-1-A0001-test" not in bot.output()

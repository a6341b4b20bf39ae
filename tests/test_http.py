"""The HTTP surface: health, routing, signatures, hostile bodies, bursts and event retries."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import MANAGER, REPORTER
from tests.harness.botprocess import SIGNING_SECRET, BotProcess
from tests.harness.fakeslack import FakeSlack
from tests.harness.slackrequests import Response, SlackRequests, plain

DEAD_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:1/x"  # nothing listens on port 1


def healthz(url: str) -> int:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture
def log_mark(bot: BotProcess) -> Iterator[int]:
    """Where the shared bot's log stood when the test began; the test checks only what follows."""
    yield len(bot.output())


def new_log(bot: BotProcess, mark: int) -> str:
    return bot.output()[mark:]


def test_healthz(slack: SlackRequests) -> None:
    resp = slack.get("/healthz")
    assert resp.status == 200
    assert resp.body == "ok"


def test_healthz_503_when_the_database_is_down(fake: FakeSlack) -> None:
    bot = BotProcess(fake.api_url, DEAD_DATABASE)
    bot.proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve", "--no-migrate", "--bind", f"127.0.0.1:{bot.port}"],
        cwd=tempfile.gettempdir(),
        env=bot.env,
        stdout=bot.log,
        stderr=subprocess.STDOUT,
    )
    try:
        status = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert bot.proc.poll() is None, bot.output()
            try:
                status = healthz(bot.url)
                break
            except OSError:  # not listening yet
                time.sleep(0.1)
        assert status == 503, bot.output()
        # It keeps answering, and keeps running: the orchestrator decides what to do.
        for _ in range(3):
            assert healthz(bot.url) == 503
        time.sleep(1.0)  # let the delivery sweep hit the dead database too
        assert bot.proc.poll() is None, bot.output()
        assert healthz(bot.url) == 503
    finally:
        bot.stop()


def test_unknown_path_is_404(slack: SlackRequests) -> None:
    assert slack.get("/nope").status == 404
    assert slack.raw("a=b", path="/slack/other").status == 404


def test_get_slack_events_is_405(slack: SlackRequests) -> None:
    assert slack.get("/slack/events").status == 405


@pytest.mark.parametrize(
    "opts",
    [
        {"signature": "v0=" + "0" * 64},
        {"sign": False},
        {"timestamp": int(time.time()) - 600},
        {"timestamp": "not-a-number"},
        {"headers": {"X-Slack-Signature": ""}},
    ],
    ids=["bad-signature", "no-headers", "stale-timestamp", "junk-timestamp", "empty-signature"],
)
def test_unsigned_or_badly_signed_requests_are_401_and_do_nothing(
    slack: SlackRequests, fake: FakeSlack, opts: dict
) -> None:
    if "timestamp" in opts and isinstance(opts["timestamp"], int):
        opts = {"timestamp": int(time.time()) - 600}  # computed now, not at collection
    resp = slack.command(user_id=REPORTER, **opts)
    assert resp.status == 401
    resp = slack.event({"type": "app_home_opened", "user": REPORTER, "tab": "home"}, **opts)
    assert resp.status == 401
    time.sleep(0.5)
    assert fake.calls == []


def test_signed_with_another_secret_is_401(bot: BotProcess, fake: FakeSlack) -> None:
    other = SlackRequests(bot.url, "another-secret", fake=fake)
    assert other.command(user_id=REPORTER).status == 401
    time.sleep(0.3)
    assert fake.calls == []


def sign_bytes(body: bytes, timestamp: int) -> str:
    """Slack signs the raw bytes (the harness's `sign` needs UTF-8)."""
    base = f"v0:{timestamp}:".encode() + body
    return "v0=" + hmac.new(SIGNING_SECRET.encode(), base, hashlib.sha256).hexdigest()


def _json(body: object) -> tuple[str, str]:
    return json.dumps(body), "application/json"


def _form_payload(payload: object) -> tuple[str, str]:
    from urllib.parse import urlencode

    return urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded"


MALFORMED_BODIES: dict[str, tuple[str | bytes, str | None]] = {
    "payload-not-json": ("payload=not-json", "application/x-www-form-urlencoded"),
    "payload-list": _form_payload([1, 2, 3]),
    "payload-string": _form_payload("block_actions"),
    "payload-empty-object": _form_payload({}),
    "json-list": _json([{"type": "event_callback"}]),
    "json-string": _json("hello"),
    "json-broken": ('{"type": "event_callback", ', "application/json"),
    "json-empty-object": _json({}),
    "garbage-bytes": (b"\x00\x01\x02garbage==&&;;%%%zz", "application/x-www-form-urlencoded"),
    "invalid-utf8": (b"payload=\xff\xfe\xfa\x80", "application/x-www-form-urlencoded"),
    "invalid-utf8-json": (b'{"type": "\xff\xfe"}', "application/json"),
    "empty-form": (b"", "application/x-www-form-urlencoded"),
    "empty-no-content-type": (b"", None),
    "octet-stream": (b"\x89PNG\r\n\x1a\n", "application/octet-stream"),
    "command-without-user": ("command=%2Fmistake&text=", "application/x-www-form-urlencoded"),
    "block-actions-no-actions": _form_payload(
        {"type": "block_actions", "user": {"id": REPORTER}, "team": {"id": "T0001"}}
    ),
    "block-actions-null-actions": _form_payload(
        {"type": "block_actions", "user": {"id": REPORTER}, "actions": None}
    ),
    "block-actions-empty-actions": _form_payload(
        {"type": "block_actions", "user": {"id": REPORTER}, "actions": []}
    ),
    "block-actions-string-actions": _form_payload(
        {"type": "block_actions", "user": {"id": REPORTER}, "actions": ["approve"]}
    ),
    "block-actions-user-string": _form_payload(
        {"type": "block_actions", "user": REPORTER, "actions": [{"action_id": "approve"}]}
    ),
    "command-without-trigger": (
        f"command=%2Fmistake&text=&user_id={REPORTER}",
        "application/x-www-form-urlencoded",
    ),
    "view-submission-null-view": _form_payload(
        {"type": "view_submission", "user": {"id": REPORTER}, "view": None}
    ),
    "event-callback-no-event": _json({"type": "event_callback", "team_id": "T0001"}),
    "event-callback-event-list": _json(
        {"type": "event_callback", "team_id": "T0001", "event": [], "event_id": "Ev1"}
    ),
}


def test_malformed_bodies_never_5xx(
    bot: BotProcess, slack: SlackRequests, fake: FakeSlack, log_mark: int
) -> None:
    statuses: dict[str, int] = {}
    for name, (body, content_type) in MALFORMED_BODIES.items():
        ts = int(time.time())
        signature = sign_bytes(body.encode() if isinstance(body, str) else body, ts)
        statuses[name] = slack.raw(body, content_type, timestamp=ts, signature=signature).status
    statuses["unknown-action"] = slack.block_action(
        REPORTER, "no_such_action", value="x", channel_id="C0001"
    ).status
    statuses["unknown-callback"] = slack.view_submission(
        REPORTER, "no_such_callback", {"b": {"value": plain("x")}}
    ).status
    statuses["unknown-event"] = slack.event({"type": "no_such_event", "user": REPORTER}).status
    statuses["view-closed"] = slack.view_closed(REPORTER, "no_such_callback").status
    verification = slack.url_verification("the-challenge")
    statuses["url-verification"] = verification.status
    assert all(200 <= s < 500 for s in statuses.values()), statuses
    assert statuses["payload-not-json"] == 400
    assert statuses["json-list"] == 400
    assert statuses["invalid-utf8"] == 400
    assert statuses["url-verification"] == 200
    assert "the-challenge" in verification.body
    assert slack.get("/healthz").status == 200
    time.sleep(0.5)  # anything run after the ack would have logged by now
    log = new_log(bot, log_mark)
    assert "Traceback" not in log, log
    assert bot.proc is not None and bot.proc.poll() is None


def test_oversized_body_is_413(slack: SlackRequests) -> None:
    resp = slack.raw("text=" + "x" * (1024 * 1024 + 10))
    assert resp.status == 413


def test_50_concurrent_commands_all_open_their_modal(slack: SlackRequests, fake: FakeSlack) -> None:
    people = [REPORTER, MANAGER]
    with ThreadPoolExecutor(max_workers=50) as pool:
        responses: list[Response] = list(
            pool.map(lambda i: slack.command(text=f"Client {i}", user_id=people[i % 2]), range(50))
        )
    assert [r.status for r in responses] == [200] * 50
    opened = fake.wait_for("views.open", count=50, timeout=15)
    assert len(opened) == 50
    assert all(c.ok for c in opened), fake.summary()
    assert {c.params["trigger_id"] for c in opened} == {r.trigger_id for r in responses}
    clients = {
        next(
            b["element"].get("initial_value")
            for b in c.params["view"]["blocks"]
            if b.get("block_id") == "client"
        )
        for c in opened
    }
    assert clients == {f"Client {i}" for i in range(50)}
    assert fake.violations == []


def test_retried_event_is_processed_once(slack: SlackRequests, fake: FakeSlack) -> None:
    event = {"type": "app_home_opened", "user": MANAGER, "tab": "home", "channel": "D0MANAGER"}
    event_id = "Ev" + uuid.uuid4().hex[:10].upper()
    assert slack.event(event, event_id=event_id).status == 200
    fake.wait_for("views.publish")
    assert slack.event(event, event_id=event_id, retry_num=1).status == 200
    assert slack.event(event, event_id=event_id, retry_num=2).status == 200
    time.sleep(1.0)
    assert fake.count("views.publish") == 1
    # A different event id is a new event.
    assert slack.event(event).status == 200
    fake.wait_for("views.publish", count=2)

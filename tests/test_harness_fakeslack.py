"""Tests of the test harness itself: FakeSlack driven by the real slack_sdk WebClient, and the
request signing of SlackRequests checked by slack_sdk's SignatureVerifier."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient

from tests.harness.fakeslack import FakeSlack
from tests.harness.slackrequests import SlackRequests, plain, select, user

TOKEN = "xoxb-harness-test"


@pytest.fixture
def fs() -> Iterator[FakeSlack]:
    with FakeSlack(token=TOKEN) as fake:
        yield fake


@pytest.fixture
def client(fs: FakeSlack) -> WebClient:
    return WebClient(base_url=fs.api_url, token=TOKEN, retry_handlers=[], timeout=5)


def modal(title: str = "Report", blocks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": "report",
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": "Send"},
        "blocks": blocks if blocks is not None else [],
    }


def section(text: str = "hi") -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


# ---------------------------------------------------------------- basics


def test_auth_and_unknown_method(fs: FakeSlack, client: WebClient) -> None:
    assert client.auth_test()["user_id"] == "UBOT"
    bad = WebClient(base_url=fs.api_url, token="xoxb-wrong", retry_handlers=[])
    with pytest.raises(SlackApiError) as err:
        bad.auth_test()
    assert err.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as err:
        client.api_call("no.such.method")
    assert err.value.response["error"] == "unknown_method"
    assert [c.method for c in fs.calls] == ["auth.test", "auth.test", "no.such.method"]


def test_users_info_with_and_without_locale(fs: FakeSlack, client: WebClient) -> None:
    fs.add_user("U1", name="tanaka", real_name="田中 太郎", title="営業部")
    fs.add_user("U2", name="smith", real_name="Jane Smith", tz="Europe/London", tz_offset=0,
                locale="en-GB")  # fmt: skip

    plain_info = client.users_info(user="U1")["user"]
    assert plain_info["real_name"] == "田中 太郎"
    assert plain_info["tz"] == "Asia/Tokyo"
    assert plain_info["tz_offset"] == 32400
    assert plain_info["profile"]["title"] == "営業部"
    assert plain_info["team_id"] == "T0001"
    assert "locale" not in plain_info

    assert client.users_info(user="U2", include_locale=True)["user"]["locale"] == "en-GB"
    with pytest.raises(SlackApiError) as err:
        client.users_info(user="U404")
    assert err.value.response["error"] == "user_not_found"

    assert fs.users_info_count == 3
    # slack_sdk sends users.info's params in the query string (of a POST)
    assert fs.calls_to("users.info")[1].params["include_locale"] == "1"


def test_conversations_open_is_deterministic(fs: FakeSlack, client: WebClient) -> None:
    fs.add_user("U1")
    first = client.conversations_open(users="U1")["channel"]["id"]
    assert first == client.conversations_open(users=["U1"])["channel"]["id"] == "DU1"


# ---------------------------------------------------------------- messages


def test_post_then_update(fs: FakeSlack, client: WebClient) -> None:
    blocks = [section("first")]
    r1 = client.chat_postMessage(channel="C1", text="one", blocks=blocks)
    r2 = client.chat_postMessage(channel="C1", text="two", metadata={"event_type": "x",
                                 "event_payload": {"a": 1}})  # fmt: skip
    assert float(r2["ts"]) > float(r1["ts"])
    assert r1["message"]["blocks"] == blocks

    up = client.chat_update(channel="C1", ts=r1["ts"], text="one (edited)", blocks=[section("2")])
    assert up["ok"]
    msgs = fs.messages_in("C1")
    assert [m["text"] for m in msgs] == ["one (edited)", "two"]
    assert msgs[0]["blocks"][0]["text"]["text"] == "2"
    assert msgs[1]["metadata"]["event_payload"] == {"a": 1}
    assert len(fs.message_history[("C1", r1["ts"])]) == 2
    assert fs.wait_for("chat.update")[0].params["ts"] == r1["ts"]

    with pytest.raises(SlackApiError) as err:
        client.chat_update(channel="C1", ts="1.000001", text="x")
    assert err.value.response["error"] == "message_not_found"
    with pytest.raises(SlackApiError) as err, pytest.warns(UserWarning):
        client.chat_postMessage(channel="C1")
    assert err.value.response["error"] == "no_text"
    fs.assert_no_violations()


def test_form_encoded_blocks_are_json_decoded(fs: FakeSlack, client: WebClient) -> None:
    blocks = [section("form")]
    client.api_call(
        "chat.postMessage", params={"channel": "C2", "text": "t", "blocks": json.dumps(blocks)}
    )
    assert fs.messages_in("C2")[0]["blocks"] == blocks
    with pytest.raises(SlackApiError) as err:
        client.api_call("chat.postMessage", params={"channel": "C2", "text": "t", "blocks": "x"})
    assert err.value.response["error"] == "invalid_blocks"
    assert any("blocks must be a list" in v for v in fs.violations)


def test_post_ephemeral_and_dm_by_user_id(fs: FakeSlack, client: WebClient) -> None:
    assert client.chat_postEphemeral(channel="C1", user="U1", text="psst")["message_ts"]
    assert fs.ephemerals[0]["text"] == "psst"
    sent = client.chat_postMessage(channel="U1", text="dm")
    assert sent["channel"] == "DU1"
    assert fs.messages_in("U1")[0]["text"] == "dm"


def test_concurrent_posts_get_unique_ts(fs: FakeSlack, client: WebClient) -> None:
    results: list[str] = []

    def post(i: int) -> None:
        results.append(client.chat_postMessage(channel="C9", text=f"m{i}")["ts"])

    threads = [threading.Thread(target=post, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 50
    assert len(fs.messages_in("C9")) == 50


# ---------------------------------------------------------------- failures & latency


def test_fail_500_twice_then_ok(fs: FakeSlack, client: WebClient) -> None:
    fs.fail("chat.postMessage", status=500, times=2)
    for _ in range(2):
        with pytest.raises(SlackApiError) as err:
            client.chat_postMessage(channel="C1", text="x")
        assert err.value.response.status_code == 500
    assert client.chat_postMessage(channel="C1", text="x")["ok"]
    calls = fs.calls_to("chat.postMessage")
    assert [c.failed for c in calls] == [True, True, False]
    assert calls[0].status == 500
    assert len(fs.calls_to("chat.postMessage", ok_only=True)) == 1


def test_fail_with_error_code_and_clear(fs: FakeSlack, client: WebClient) -> None:
    fs.fail("auth.test", error="account_inactive")
    for _ in range(2):
        with pytest.raises(SlackApiError) as err:
            client.auth_test()
        assert err.value.response["error"] == "account_inactive"
    fs.clear_failures()
    assert client.auth_test()["ok"]


def test_fail_for_seconds(fs: FakeSlack, client: WebClient) -> None:
    fs.fail("auth.test", status=503, seconds=0.2)
    with pytest.raises(SlackApiError):
        client.auth_test()
    time.sleep(0.3)
    assert client.auth_test()["ok"]


def test_rate_limited_then_recovers_with_retry_handler(fs: FakeSlack) -> None:
    retrying = WebClient(
        base_url=fs.api_url,
        token=TOKEN,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)],
    )
    fs.fail("chat.postMessage", status=429, times=1, retry_after=1)
    started = time.monotonic()
    assert retrying.chat_postMessage(channel="C1", text="x")["ok"]
    assert time.monotonic() - started >= 1.0
    calls = fs.calls_to("chat.postMessage")
    assert len(calls) == 2
    assert calls[0].failed and calls[0].status == 429
    assert calls[0].response["error"] == "ratelimited"
    assert calls[1].at - calls[0].at >= 1.0


def test_rate_limited_without_retry_handler(fs: FakeSlack, client: WebClient) -> None:
    fs.fail("chat.postMessage", status=429, times=1, retry_after=7)
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="C1", text="x")
    assert err.value.response.status_code == 429
    assert err.value.response.headers["Retry-After"] == "7"
    assert err.value.response["error"] == "ratelimited"


def test_latency(fs: FakeSlack, client: WebClient) -> None:
    fs.latency = 0.2
    started = time.monotonic()
    client.auth_test()
    assert time.monotonic() - started >= 0.2
    fs.reset()
    assert fs.latency == 0.0 and fs.calls == []


def test_wait_for(fs: FakeSlack, client: WebClient) -> None:
    timer = threading.Timer(0.1, lambda: client.chat_postMessage(channel="C1", text="later"))
    timer.start()
    calls = fs.wait_for("chat.postMessage", lambda c: c.params["text"] == "later", timeout=3)
    assert calls[0].response["ok"]
    with pytest.raises(AssertionError, match=r"chat\.postMessage \[200 ok\]"):
        fs.wait_for("chat.postMessage", count=2, timeout=0.2)


# ---------------------------------------------------------------- views & triggers


def test_views_open_update_push_publish(fs: FakeSlack, client: WebClient) -> None:
    opened = client.views_open(trigger_id=fs.issue_trigger_id(), view=modal())["view"]
    assert opened["id"].startswith("V") and opened["hash"]
    assert opened["callback_id"] == "report"
    updated = client.views_update(view_id=opened["id"], hash=opened["hash"], view=modal("Two"))
    assert updated["view"]["title"]["text"] == "Two"
    with pytest.raises(SlackApiError) as err:
        client.views_update(view_id=opened["id"], hash=opened["hash"], view=modal("Stale"))
    assert err.value.response["error"] == "hash_conflict"
    pushed = client.views_push(trigger_id=fs.issue_trigger_id(), view=modal("Pushed"))["view"]
    assert pushed["id"] != opened["id"]
    home = client.views_publish(user_id="U1", view={"type": "home", "blocks": [section()]})
    assert fs.home_views["U1"]["id"] == home["view"]["id"]
    fs.assert_no_violations()


def test_view_limit_violations(fs: FakeSlack, client: WebClient) -> None:
    client.views_open(trigger_id=fs.issue_trigger_id(), view=modal("x" * 25))
    client.views_open(trigger_id=fs.issue_trigger_id(), view=modal(blocks=[section()] * 101))
    assert any("views.open" in v and "title" in v and "max 24" in v for v in fs.violations)
    assert any("101 blocks (max 100)" in v for v in fs.violations)
    with pytest.raises(AssertionError, match="violation"):
        fs.assert_no_violations()


def test_message_block_violations(fs: FakeSlack, client: WebClient) -> None:
    button = {
        "type": "button",
        "action_id": "go",
        "text": {"type": "plain_text", "text": "b" * 76},
    }
    client.chat_postMessage(
        channel="C1", text="t", blocks=[{"type": "actions", "elements": [button]}]
    )
    assert len(fs.violations) == 1
    assert "chat.postMessage" in fs.violations[0]
    assert "76 chars (max 75)" in fs.violations[0]

    fs.reset()
    bad = [
        {"type": "header", "text": {"type": "mrkdwn", "text": "h"}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11},
        {"type": "section", "text": {"type": "markdown", "text": "x"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "y" * 3001}},
        {
            "type": "input",
            "label": {"type": "plain_text", "text": "L"},
            "element": {
                "type": "static_select",
                "action_id": "s",
                "options": [
                    {"text": {"type": "plain_text", "text": f"o{i}"}, "value": str(i)}
                    for i in range(101)
                ],
            },
        },
    ]
    client.chat_postMessage(channel="C1", text="t", blocks=bad)
    text = "\n".join(fs.violations)
    assert "must be plain_text" in text
    assert "fields has 11 items (max 10)" in text
    assert "'markdown' is not plain_text/mrkdwn" in text
    assert "3001 chars (max 3000)" in text
    assert "options has 101 items (max 100)" in text

    fs.reset()
    client.chat_postMessage(channel="C1", text="t", blocks=[section()] * 51)
    assert fs.violations == ["chat.postMessage: message has 51 blocks (max 50)"]

    fs.reset()
    ok_blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "見出し :tada:", "emoji": True}},
        section(),
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}]},
        {"type": "divider"},
    ]
    client.chat_postMessage(channel="C1", text="t", blocks=ok_blocks)
    fs.assert_no_violations()


def test_expired_trigger_id(fs: FakeSlack, client: WebClient) -> None:
    fs.trigger_ttl = 0.05
    trigger = fs.issue_trigger_id()
    time.sleep(0.1)
    with pytest.raises(SlackApiError) as err:
        client.views_open(trigger_id=trigger, view=modal())
    assert err.value.response["error"] == "expired_trigger_id"
    assert any("trigger_id used" in v for v in fs.violations)


def test_reused_and_unknown_trigger_id(fs: FakeSlack, client: WebClient) -> None:
    trigger = fs.issue_trigger_id()
    client.views_open(trigger_id=trigger, view=modal())
    with pytest.raises(SlackApiError) as err:
        client.views_push(trigger_id=trigger, view=modal())
    assert err.value.response["error"] == "exchanged_trigger_id"
    assert any("used more than once" in v for v in fs.violations)
    with pytest.raises(SlackApiError) as err:
        client.views_open(trigger_id="123.456.never-issued", view=modal())
    assert err.value.response["error"] == "invalid_trigger_id"


# ---------------------------------------------------------------- response_url & files


def test_response_url_recording(fs: FakeSlack) -> None:
    url = fs.new_response_url()
    assert url.startswith(fs.base_url + "/response/")
    resp = WebhookClient(url).send(text="thanks", response_type="ephemeral")
    assert resp.status_code == 200 and resp.body == "ok"
    got = fs.wait_for_response(lambda r: r.body.get("text") == "thanks")
    rid, body, _at = got[0]
    assert url.endswith(rid)
    assert body["response_type"] == "ephemeral"

    bad = WebhookClient(url).send_dict({"text": "x", "blocks": "nope"})
    assert bad.status_code == 400
    assert any("response_url" in v for v in fs.violations)


def test_files_upload_v2(fs: FakeSlack, client: WebClient) -> None:
    resp = client.files_upload_v2(
        channel="D1", content="hello", filename="a.md", title="A", initial_comment="see"
    )
    assert resp["ok"]
    file_id = resp["file"]["id"]
    stored = fs.files[file_id]
    assert stored["content"] == b"hello"
    assert stored["title"] == "A"
    assert stored["filename"] == "a.md"
    assert stored["channel_id"] == "D1"
    assert stored["initial_comment"] == "see"
    assert [c.method for c in fs.calls] == [
        "files.getUploadURLExternal",
        "files.completeUploadExternal",
    ]
    fs.assert_no_violations()


# ---------------------------------------------------------------- SlackRequests signing


class _Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.seen.append({"path": self.path, "headers": dict(self.headers), "body": body})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ok": true}')


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []
    handler = type("Handler", (_Recorder,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def _verify(secret: str, req: dict[str, Any]) -> bool:
    return SignatureVerifier(secret).is_valid_request(req["body"], req["headers"])


def test_signature_accepted_by_slack_sdk(
    recorder: tuple[str, list[dict[str, Any]]], fs: FakeSlack
) -> None:
    url, seen = recorder
    slack = SlackRequests(url, "s3cret", fake=fs)

    resp = slack.command("薬の誤配送", user_id="U1")
    assert resp.status == 200 and resp.json == {"ok": True}
    assert resp.response_url and resp.response_url.startswith(fs.base_url)
    req = seen[-1]
    assert req["path"] == "/slack/events"
    assert _verify("s3cret", req)
    assert not _verify("other-secret", req)
    form = parse_qs(req["body"].decode())
    assert form["text"] == ["薬の誤配送"] and form["command"] == ["/mistake"]
    assert form["trigger_id"] == [resp.trigger_id]

    slack.view_submission("U1", "report", {"b1": {"a1": plain("x")}, "b2": {"a2": user("U2")}})
    payload = json.loads(parse_qs(seen[-1]["body"].decode())["payload"][0])
    assert payload["view"]["state"]["values"]["b2"]["a2"]["selected_user"] == "U2"
    assert _verify("s3cret", seen[-1])

    slack.block_action("U1", "pick", action_type="static_select", selected="v", channel_id="C1")
    payload = json.loads(parse_qs(seen[-1]["body"].decode())["payload"][0])
    assert payload["actions"][0]["selected_option"] == select("v")["selected_option"]
    assert payload["response_url"].startswith(fs.base_url)

    slack.event({"type": "app_home_opened", "user": "U1", "tab": "home"}, retry_num=1)
    assert seen[-1]["headers"]["Content-Type"] == "application/json"
    assert seen[-1]["headers"]["X-Slack-Retry-Num"] == "1"
    assert json.loads(seen[-1]["body"])["event_id"].startswith("Ev")
    assert _verify("s3cret", seen[-1])

    slack.command("x", timestamp=int(time.time()) - 600)
    assert not _verify("s3cret", seen[-1])  # stale
    slack.command("x", sign=False)
    assert "X-Slack-Signature" not in seen[-1]["headers"]
    slack.command("x", signature="v0=deadbeef")
    assert seen[-1]["headers"]["X-Slack-Signature"] == "v0=deadbeef"


def test_slackrequests_returns_error_statuses(fs: FakeSlack) -> None:
    slack = SlackRequests(fs.base_url, "s")
    resp = slack.get("/nope")
    assert resp.status == 404 and resp.json is None
    assert resp.elapsed >= 0


# ---------------------------------------------------------------- end to end through bolt


@pytest.fixture
def bolt_url(fs: FakeSlack) -> Iterator[str]:
    """A tiny bolt App served over HTTP, talking to the fake."""
    from slack_bolt import App, BoltRequest

    app = App(
        token=TOKEN,
        signing_secret="bolt-secret",
        client=WebClient(base_url=fs.api_url, token=TOKEN),
    )

    @app.command("/mistake")
    def on_command(ack: Any, body: dict[str, Any], client: WebClient, respond: Any) -> None:
        ack()
        client.views_open(trigger_id=body["trigger_id"], view=modal(body["text"] or "Report"))
        respond(text=f"got {body['text']}")

    @app.view("report")
    def on_submit(ack: Any, view: dict[str, Any], body: dict[str, Any], client: WebClient) -> None:
        ack()
        values = view["state"]["values"]
        client.chat_postMessage(
            channel=body["user"]["id"],
            text=f"{values['b']['t']['value']} / {values['b2']['u']['selected_user']}",
        )

    @app.action("approve")
    def on_action(ack: Any, body: dict[str, Any], respond: Any) -> None:
        ack()
        respond(text=f"approved {body['actions'][0]['value']}", replace_original=True)

    @app.event("app_home_opened")
    def on_home(event: dict[str, Any], client: WebClient) -> None:
        client.views_publish(user_id=event["user"], view={"type": "home", "blocks": [section()]})

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            headers = {k.lower(): [v] for k, v in self.headers.items()}
            resp = app.dispatch(BoltRequest(body=body, headers=headers))
            data = resp.body.encode()
            self.send_response(resp.status)
            for key, values in resp.headers.items():
                for value in values:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_end_to_end_with_bolt(fs: FakeSlack, bolt_url: str) -> None:
    slack = SlackRequests(bolt_url, "bolt-secret", fake=fs)

    resp = slack.command("Oops")
    assert resp.status == 200
    fs.wait_for("views.open", lambda c: c.response["ok"])
    fs.wait_for_response(lambda r: r.body.get("text") == "got Oops")

    resp = slack.view_submission(
        "U1", "report", {"b": {"t": plain("late delivery")}, "b2": {"u": user("U2")}}
    )
    assert resp.status == 200
    fs.wait_for("chat.postMessage", lambda c: c.params["text"] == "late delivery / U2")

    resp = slack.block_action("U1", "approve", value="42", channel_id="C1")
    assert resp.status == 200
    got = fs.wait_for_response(lambda r: r.body.get("text") == "approved 42")
    assert got[0].body["replace_original"] is True

    resp = slack.event({"type": "app_home_opened", "user": "U1", "tab": "home"})
    assert resp.status == 200
    fs.wait_for("views.publish")

    assert slack.command("x", signature="v0=bad").status == 401
    assert slack.command("x", timestamp=int(time.time()) - 600).status == 401
    assert slack.url_verification("abc").json == {"challenge": "abc"}
    fs.assert_no_violations()

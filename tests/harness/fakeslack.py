"""A fake Slack Web API served over real HTTP on 127.0.0.1.

Point a real ``slack_sdk.WebClient(base_url=fake.api_url, token=fake.token)`` (or a bolt
``App(client=...)``) at it.  Every call is recorded in ``fake.calls``; Slack's documented
Block Kit / view limits are checked and broken rules are recorded in ``fake.violations``
(Slack itself would answer ``invalid_blocks`` / ``invalid_arguments``; the fake answers ok so a
test can see *all* the problems at once, then ``fake.assert_no_violations()``).

Routes served:

* ``/api/<method>``            Web API (form, JSON, multipart bodies and query strings)
* ``/response/<id>``           response_url endpoint (see ``new_response_url``)
* ``/upload/<file_id>``        upload URL handed out by ``files.getUploadURLExternal``
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlsplit

TEAM_ID = "T0001"
BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"
DEFAULT_TOKEN = "xoxb-test-token"

# Form-encoded parameters that slack_sdk/Slack send as JSON strings.
JSON_PARAMS = frozenset(
    {"blocks", "attachments", "view", "metadata", "files", "unfurls", "user_auth_blocks"}
)

TZ_LABELS = {
    "Asia/Tokyo": "Japan Standard Time",
    "America/Los_Angeles": "Pacific Standard Time",
    "America/New_York": "Eastern Standard Time",
    "Europe/London": "Greenwich Mean Time",
    "Europe/Berlin": "Central European Time",
    "UTC": "Coordinated Universal Time",
}

KNOWN_BLOCKS = frozenset(
    {
        "section",
        "context",
        "actions",
        "input",
        "header",
        "divider",
        "image",
        "rich_text",
        "file",
        "video",
        "markdown",
        "context_actions",
    }
)
KNOWN_ELEMENTS = frozenset(
    {
        "button",
        "checkboxes",
        "datepicker",
        "datetimepicker",
        "email_text_input",
        "external_select",
        "file_input",
        "image",
        "multi_channels_select",
        "multi_conversations_select",
        "multi_external_select",
        "multi_static_select",
        "multi_users_select",
        "number_input",
        "overflow",
        "plain_text_input",
        "radio_buttons",
        "rich_text_input",
        "static_select",
        "channels_select",
        "conversations_select",
        "users_select",
        "timepicker",
        "url_text_input",
        "workflow_button",
    }
)
# max number of options per option-bearing element
OPTION_LIMITS = {
    "static_select": 100,
    "multi_static_select": 100,
    "overflow": 5,
    "radio_buttons": 10,
    "checkboxes": 10,
}


@dataclass
class Call:
    """One recorded Web API call."""

    method: str
    params: dict[str, Any]
    at: float  # time.monotonic() when the (latency-delayed) request was processed
    wall: float  # time.time() at the same moment
    response: dict[str, Any]
    failed: bool = False  # True when answered by an injected failure
    status: int = 200  # HTTP status answered

    @property
    def ok(self) -> bool:
        return bool(self.response.get("ok")) and not self.failed


class ResponseCall(NamedTuple):
    """One POST to a response_url (unpackable as ``(id, body, at)``)."""

    id: str
    body: dict[str, Any]
    at: float


@dataclass
class _Failure:
    method: str
    status: int
    remaining: int | None
    until: float | None
    retry_after: int | None
    error: str | None


@dataclass
class _HttpReply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def _json_reply(data: dict[str, Any], status: int = 200, **headers: str) -> _HttpReply:
    hdrs = {"Content-Type": "application/json; charset=utf-8", **headers}
    return _HttpReply(status, json.dumps(data, ensure_ascii=False).encode("utf-8"), hdrs)


def _text_reply(text: str, status: int = 200) -> _HttpReply:
    return _HttpReply(status, text.encode("utf-8"), {"Content-Type": "text/plain; charset=utf-8"})


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _parse_multipart(content_type: str, raw: bytes) -> dict[str, Any]:
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
    out: dict[str, Any] = {}
    for part in msg.iter_parts():  # type: ignore[attr-defined]
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        if part.get_filename():
            out[name] = payload
        else:
            out[name] = payload.decode("utf-8", "replace")
    return out


def parse_body(query: str, content_type: str, raw: bytes) -> dict[str, Any]:
    """Parse query string + body (form / JSON / multipart) into one dict.

    Raises ValueError on a malformed JSON body.
    """
    params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True)) if query else {}
    ctype = content_type.lower()
    if raw:
        if ctype.startswith("application/json"):
            body = json.loads(raw.decode("utf-8"))
            if not isinstance(body, dict):
                raise ValueError("JSON body is not an object")
            params.update(body)
        elif ctype.startswith("multipart/form-data"):
            params.update(_parse_multipart(content_type, raw))
        else:
            params.update(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    for key in JSON_PARAMS & params.keys():
        params[key] = _maybe_json(params[key])
    return {k: v for k, v in params.items() if v is not None}


def _short(value: Any, limit: int = 120) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Server(ThreadingHTTPServer):
    request_queue_size = 256
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeSlack


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        try:
            reply = fake._handle_http(self.path, self.headers, raw)
        except Exception as exc:  # a bug in the fake must not hang the client
            fake._violate(f"fakeslack internal error on {self.path}: {exc!r}")
            reply = _text_reply(f"fakeslack internal error: {exc!r}", 500)
        try:
            self.send_response(reply.status)
            for key, value in reply.headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):  # client gave up (timeout)
            pass


class FakeSlack:
    """A fake Slack Web API on a real HTTP server.  See module docstring."""

    def __init__(self, token: str = DEFAULT_TOKEN, latency: float = 0.0, port: int = 0) -> None:
        self.token = token
        self.latency = latency
        self._default_latency = latency
        self.trigger_ttl = 3.0
        # Walk every block for Slack's limits (tests always do). A benchmark may turn it off:
        # the fake runs inside the benchmark's process and would charge its own CPU time for
        # validating bigger views to the server being measured.
        self.check_blocks = True
        self.response_url_max_uses = 5
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.RLock()
        self._seq = 0
        self._ts_base = int(time.time())

        self.calls: list[Call] = []
        self.violations: list[str] = []
        self.responses: list[ResponseCall] = []
        self.users: dict[str, dict[str, Any]] = {}
        self._locales: dict[str, str] = {}
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.message_history: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.ephemerals: list[dict[str, Any]] = []
        self.views: dict[str, dict[str, Any]] = {}
        self.home_views: dict[str, dict[str, Any]] = {}
        self.files: dict[str, dict[str, Any]] = {}
        self._pending_uploads: dict[str, dict[str, Any]] = {}
        self._external_ids: dict[str, str] = {}
        self._failures: list[_Failure] = []
        self._triggers: dict[str, float] = {}
        self._used_triggers: set[str] = set()
        self._response_urls: dict[str, int] = {}
        self._opened: set[str] = set()

        self._methods: dict[str, Callable[[str, dict[str, Any]], dict[str, Any]]] = {
            "api.test": lambda m, p: {"ok": True, "args": p},
            "auth.test": self._auth_test,
            "users.info": self._users_info,
            "conversations.open": self._conversations_open,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.delete": self._chat_delete,
            "chat.getPermalink": self._chat_get_permalink,
            "views.open": self._views_open,
            "views.push": self._views_open,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
            "files.upload": self._files_upload_legacy,
        }

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeSlack:
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", self._port), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeSlack is not started")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    # ------------------------------------------------------------------ test helpers

    def add_user(
        self,
        user_id: str,
        name: str | None = None,
        real_name: str | None = None,
        tz: str = "Asia/Tokyo",
        tz_offset: int = 32400,
        locale: str = "ja-JP",
        is_bot: bool = False,
        deleted: bool = False,
        title: str = "",
        display_name: str = "",
        email: str | None = None,
    ) -> dict[str, Any]:
        """Register a workspace user.  ``display_name`` defaults to "" (as for many real
        users), so bots must fall back to ``real_name``."""
        name = name or user_id.lower()
        real_name = real_name if real_name is not None else name
        user = {
            "id": user_id,
            "team_id": TEAM_ID,
            "name": name,
            "real_name": real_name,
            "deleted": deleted,
            "is_bot": is_bot,
            "is_app_user": False,
            "is_admin": False,
            "is_owner": False,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "tz": tz,
            "tz_label": TZ_LABELS.get(tz, tz),
            "tz_offset": tz_offset,
            "updated": self._ts_base,
            "profile": {
                "real_name": real_name,
                "real_name_normalized": real_name,
                "display_name": display_name,
                "display_name_normalized": display_name,
                "title": title,
                "email": email or f"{name}@example.com",
                "team": TEAM_ID,
                "image_72": f"https://example.invalid/{user_id}_72.png",
            },
        }
        with self._lock:
            self.users[user_id] = user
            self._locales[user_id] = locale
        return user

    def issue_trigger_id(self) -> str:
        with self._lock:
            self._seq += 1
            trigger = f"{self._seq}.{self._ts_base}.{uuid.uuid4().hex}"
            self._triggers[trigger] = time.monotonic()
        return trigger

    def new_response_url(self) -> str:
        rid = uuid.uuid4().hex
        with self._lock:
            self._response_urls[rid] = 0
        return f"{self.base_url}/response/{rid}"

    def fail(
        self,
        method: str,
        status: int = 500,
        times: int | None = None,
        seconds: float | None = None,
        retry_after: int | None = None,
        error: str | None = None,
    ) -> None:
        """Make ``method`` (or "*" for every method) fail.

        The next ``times`` calls fail, or all calls during the next ``seconds``; with neither,
        every call fails until ``clear_failures()``.  ``error`` answers HTTP 200
        ``{"ok": false, "error": error}`` instead of an HTTP error status.
        """
        until = time.monotonic() + seconds if seconds is not None else None
        with self._lock:
            self._failures.append(_Failure(method, status, times, until, retry_after, error))

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    def reset(self) -> None:
        """Start a test afresh: forget calls, violations, injected failures, response_url
        posts and stored messages/views/files; restore ``latency`` and ``trigger_ttl`` to
        their defaults.  Users, issued trigger ids and response URLs are kept."""
        with self._lock:
            self.calls.clear()
            self.violations.clear()
            self._failures.clear()
            self.responses.clear()
            self.messages.clear()
            self.message_history.clear()
            self.ephemerals.clear()
            self.views.clear()
            self.home_views.clear()
            self.files.clear()
            self._pending_uploads.clear()
            self._external_ids.clear()
            self.latency = self._default_latency
            self.trigger_ttl = 3.0

    def calls_to(self, method: str, *, ok_only: bool = False) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method and (c.ok or not ok_only)]

    def count(self, method: str) -> int:
        return len(self.calls_to(method))

    @property
    def users_info_count(self) -> int:
        return self.count("users.info")

    def messages_in(self, channel: str) -> list[dict[str, Any]]:
        """Latest versions of the messages in ``channel`` (a user id means their DM), by ts."""
        channel = self._dm_for(channel)
        with self._lock:
            found = [dict(m) for (ch, _ts), m in self.messages.items() if ch == channel]
        return sorted(found, key=lambda m: float(m["ts"]))

    def wait_for(
        self,
        method: str,
        predicate: Callable[[Call], bool] = lambda call: True,
        count: int = 1,
        timeout: float = 5.0,
        *,
        ok_only: bool = False,
    ) -> list[Call]:
        """Poll until ``count`` calls of ``method`` match ``predicate``; return all matches.

        Failed (injected) calls are included unless ``ok_only``.
        """
        deadline = time.monotonic() + timeout
        while True:
            matches = [c for c in self.calls_to(method, ok_only=ok_only) if predicate(c)]
            if len(matches) >= count:
                return matches
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"expected >= {count} {method} call(s) matching predicate within "
                    f"{timeout}s, got {len(matches)}.\n{self.summary()}"
                )
            time.sleep(0.01)

    def wait_for_response(
        self,
        predicate: Callable[[ResponseCall], bool] = lambda r: True,
        count: int = 1,
        timeout: float = 5.0,
    ) -> list[ResponseCall]:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                matches = [r for r in self.responses if predicate(r)]
            if len(matches) >= count:
                return matches
            if time.monotonic() >= deadline:
                lines = [f"  {r.id[:8]} {_short(r.body, 200)}" for r in list(self.responses)]
                raise AssertionError(
                    f"expected >= {count} response_url post(s) matching predicate within "
                    f"{timeout}s, got {len(matches)}. Recorded posts:\n"
                    + ("\n".join(lines) or "  (none)")
                    + f"\n{self.summary()}"
                )
            time.sleep(0.01)

    def summary(self) -> str:
        with self._lock:
            calls = list(self.calls)
            violations = list(self.violations)
        lines = [f"Recorded calls ({len(calls)}):"]
        for c in calls:
            flag = "FAILED " if c.failed else ""
            res = "ok" if c.response.get("ok") else f"error={c.response.get('error')}"
            lines.append(f"  {flag}{c.method} [{c.status} {res}] {_short(c.params)}")
        if violations:
            lines.append(f"Violations ({len(violations)}):")
            lines.extend(f"  {v}" for v in violations)
        return "\n".join(lines)

    def assert_no_violations(self) -> None:
        with self._lock:
            violations = list(self.violations)
        if violations:
            raise AssertionError(
                f"{len(violations)} Slack limit violation(s):\n"
                + "\n".join(f"  - {v}" for v in violations)
            )

    # ------------------------------------------------------------------ HTTP plumbing

    def _violate(self, text: str) -> None:
        with self._lock:
            self.violations.append(text)

    def _next_ts(self) -> str:
        self._seq += 1
        micros = self._seq * 100
        return f"{self._ts_base + micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _next_id(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}{self._seq:08d}"

    def _handle_http(self, path: str, headers: Message, raw: bytes) -> _HttpReply:
        if self.latency > 0:
            time.sleep(self.latency)
        split = urlsplit(path)
        route = split.path
        if route.startswith("/api/"):
            return self._handle_api(route[len("/api/") :], split.query, headers, raw)
        if route.startswith("/response/"):
            return self._handle_response_url(route[len("/response/") :], headers, raw)
        if route.startswith("/upload/"):
            return self._handle_upload(route[len("/upload/") :], raw)
        if route in ("/", "/healthz"):
            return _text_reply("fakeslack ok")
        return _text_reply("not found", 404)

    def _take_failure(self, method: str) -> _Failure | None:
        now = time.monotonic()
        with self._lock:
            for failure in list(self._failures):
                if failure.method not in (method, "*"):
                    continue
                if failure.until is not None and now > failure.until:
                    self._failures.remove(failure)
                    continue
                if failure.remaining is not None:
                    failure.remaining -= 1
                    if failure.remaining <= 0:
                        self._failures.remove(failure)
                return failure
        return None

    def _handle_api(self, method: str, query: str, headers: Message, raw: bytes) -> _HttpReply:
        at, wall = time.monotonic(), time.time()
        parse_error = None
        try:
            params = parse_body(query, headers.get("Content-Type") or "", raw)
        except ValueError as exc:
            params, parse_error = {}, exc
        token = params.pop("token", None)
        auth = headers.get("Authorization") or ""
        if auth.lower().startswith("bearer "):
            token = auth[len("bearer ") :].strip()

        failure = self._take_failure(method)
        if failure is not None:
            reply, response = self._failure_reply(failure)
            self._record(Call(method, params, at, wall, response, True, reply.status))
            return reply

        if parse_error is not None:
            response = {"ok": False, "error": "invalid_json"}
        elif token != self.token:
            response = {"ok": False, "error": "invalid_auth"}
        elif method not in self._methods:
            response = {"ok": False, "error": "unknown_method"}
        else:
            with self._lock:
                response = self._methods[method](method, params)
        self._record(Call(method, params, at, wall, response))
        return _json_reply(response)

    def _failure_reply(self, failure: _Failure) -> tuple[_HttpReply, dict[str, Any]]:
        if failure.error is not None:
            response = {"ok": False, "error": failure.error}
            return _json_reply(response), response
        if failure.status == 429:
            retry_after = str(failure.retry_after or 1)
            response = {"ok": False, "error": "ratelimited"}
            reply = _json_reply(response, 429, **{"Retry-After": retry_after})
            return reply, {**response, "status": 429, "retry_after": int(retry_after)}
        response = {"ok": False, "error": f"http_{failure.status}", "status": failure.status}
        return _text_reply("internal error", failure.status), response

    def _record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def _handle_response_url(self, rid: str, headers: Message, raw: bytes) -> _HttpReply:
        at = time.monotonic()
        try:
            body = parse_body("", headers.get("Content-Type") or "application/json", raw)
        except ValueError:
            body = {"_raw": raw.decode("utf-8", "replace")}
        if isinstance(body.get("payload"), str):  # form-encoded {"payload": json}
            body = _maybe_json(body["payload"]) if body["payload"][:1] == "{" else body
        with self._lock:
            self.responses.append(ResponseCall(rid, body, at))
            uses = self._response_urls.get(rid, 0) + 1
            self._response_urls[rid] = uses
            if uses > self.response_url_max_uses:
                self._violate(
                    f"response_url {rid[:8]}: used {uses} times "
                    f"(Slack allows {self.response_url_max_uses})"
                )
            if "_raw" in body:
                self._violate(f"response_url {rid[:8]}: body is not JSON: {_short(body['_raw'])}")
                return _text_reply("invalid_payload", 400)
            if self._check_message("response_url", body) is not None:
                return _text_reply("invalid_blocks", 400)
        return _text_reply("ok")

    def _handle_upload(self, file_id: str, raw: bytes) -> _HttpReply:
        with self._lock:
            pending = self._pending_uploads.get(file_id)
            if pending is None:
                self._violate(f"upload: POST to unknown upload URL for {file_id}")
                return _text_reply("file not found", 404)
            pending["content"] = raw
        return _text_reply(f"OK - {len(raw)}")

    # ------------------------------------------------------------------ API methods

    def _auth_test(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://test.slack.com/",
            "team": "Test",
            "user": "horenso",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _users_info(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        uid = params.get("user")
        user = self.users.get(uid) if isinstance(uid, str) else None
        if user is None:
            return {"ok": False, "error": "user_not_found"}
        out = json.loads(json.dumps(user))
        if _truthy(params.get("include_locale", False)):
            out["locale"] = self._locales.get(uid, "en-US")
        return {"ok": True, "user": out}

    @staticmethod
    def _dm_for(channel: str) -> str:
        # Posting to a user id posts into the bot's DM with that user.
        if channel[:1] in ("U", "W") and channel != BOT_USER_ID:
            return "D" + channel
        return channel

    def _conversations_open(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("channel"):
            return {"ok": True, "channel": {"id": params["channel"]}}
        users = params.get("users")
        if isinstance(users, str):
            users = [u.strip() for u in users.split(",") if u.strip()]
        if not users:
            return {"ok": False, "error": "users_list_not_supplied"}
        missing = [u for u in users if self.users and u not in self.users]
        if missing:
            return {"ok": False, "error": "user_not_found"}
        cid = "D" + users[0] if len(users) == 1 else "G" + "".join(sorted(users))
        already = cid in self._opened
        self._opened.add(cid)
        return {"ok": True, "no_op": already, "already_open": already, "channel": {"id": cid}}

    def _check_has_content(self, params: dict[str, Any]) -> bool:
        return any(params.get(k) not in (None, "", []) for k in ("text", "blocks", "attachments"))

    def _chat_post_message(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        channel = params.get("channel")
        if not channel or not isinstance(channel, str):
            return {"ok": False, "error": "channel_not_found"}
        if not self._check_has_content(params):
            return {"ok": False, "error": "no_text"}
        error = self._check_message(method, params)
        if error:
            return {"ok": False, "error": error}
        channel = self._dm_for(channel)
        ts = self._next_ts()
        message = {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "ts": ts,
            "text": params.get("text", ""),
            "blocks": params.get("blocks", []),
        }
        for key in ("metadata", "attachments", "thread_ts", "reply_broadcast"):
            if key in params:
                message[key] = params[key]
        self.messages[(channel, ts)] = {**message, "channel": channel}
        self.message_history[(channel, ts)] = [{**message, "channel": channel}]
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _chat_update(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        channel, ts = params.get("channel"), params.get("ts")
        if not channel or not ts:
            return {"ok": False, "error": "message_not_found" if channel else "channel_not_found"}
        channel = self._dm_for(str(channel))
        current = self.messages.get((channel, str(ts)))
        if current is None:
            return {"ok": False, "error": "message_not_found"}
        if not self._check_has_content(params):
            return {"ok": False, "error": "no_text"}
        error = self._check_message(method, params)
        if error:
            return {"ok": False, "error": error}
        updated = dict(current)
        for key in ("text", "blocks", "attachments", "metadata"):
            if key in params:
                updated[key] = params[key]
        updated["edited"] = {"user": BOT_USER_ID, "ts": self._next_ts()}
        self.messages[(channel, str(ts))] = updated
        self.message_history[(channel, str(ts))].append(updated)
        message = {k: v for k, v in updated.items() if k != "channel"}
        return {
            "ok": True,
            "channel": channel,
            "ts": ts,
            "text": updated["text"],
            "message": message,
        }

    def _chat_post_ephemeral(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        channel, user = params.get("channel"), params.get("user")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not user:
            return {"ok": False, "error": "user_not_in_channel"}
        if not self._check_has_content(params):
            return {"ok": False, "error": "no_text"}
        error = self._check_message(method, params)
        if error:
            return {"ok": False, "error": error}
        ts = self._next_ts()
        self.ephemerals.append(
            {
                "channel": channel,
                "user": user,
                "ts": ts,
                "text": params.get("text", ""),
                "blocks": params.get("blocks", []),
                "thread_ts": params.get("thread_ts"),
            }
        )
        return {"ok": True, "message_ts": ts}

    def _chat_delete(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        key = (self._dm_for(str(params.get("channel", ""))), str(params.get("ts", "")))
        if self.messages.pop(key, None) is None:
            return {"ok": False, "error": "message_not_found"}
        return {"ok": True, "channel": key[0], "ts": key[1]}

    def _chat_get_permalink(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(params.get("channel", "")), str(params.get("message_ts", ""))
        if (self._dm_for(channel), ts) not in self.messages:
            return {"ok": False, "error": "message_not_found"}
        link = f"https://test.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        return {"ok": True, "channel": channel, "permalink": link}

    def _use_trigger(self, method: str, trigger_id: Any) -> str | None:
        if not trigger_id or trigger_id not in self._triggers:
            return "invalid_trigger_id"
        if trigger_id in self._used_triggers:
            self._violate(f"{method}: trigger_id {trigger_id[:16]}... used more than once")
            return "exchanged_trigger_id"
        self._used_triggers.add(trigger_id)
        age = time.monotonic() - self._triggers[trigger_id]
        if age > self.trigger_ttl:
            self._violate(
                f"{method}: trigger_id used {age:.2f}s after issue "
                f"(expires after {self.trigger_ttl:.2f}s)"
            )
            return "expired_trigger_id"
        return None

    def _store_view(
        self, view: dict[str, Any], view_id: str, previous: str | None = None
    ) -> dict[str, Any]:
        old = self.views.get(view_id, {})
        stored = {
            **view,
            "id": view_id,
            "team_id": TEAM_ID,
            "app_id": "A0001",
            "bot_id": BOT_ID,
            "state": {"values": {}},
            "hash": uuid.uuid4().hex[:16],
            "root_view_id": old.get("root_view_id", view_id),
            "previous_view_id": previous if previous is not None else old.get("previous_view_id"),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "external_id": view.get("external_id", ""),
        }
        self.views[view_id] = stored
        if stored["external_id"]:
            self._external_ids[stored["external_id"]] = view_id
        return stored

    def _views_open(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        error = self._use_trigger(method, params.get("trigger_id"))
        if error:
            return {"ok": False, "error": error}
        view, error = self._check_view(method, params.get("view"))
        if error:
            return {"ok": False, "error": error}
        previous = None
        if method == "views.push" and self.views:
            previous = next(reversed(self.views))
        stored = self._store_view(view, self._next_id("V"), previous)
        return {"ok": True, "view": stored}

    def _views_update(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        view_id, external_id = params.get("view_id"), params.get("external_id")
        if not view_id and not external_id:
            return {"ok": False, "error": "invalid_arguments"}
        if not view_id:
            view_id = self._external_ids.get(external_id)
            if view_id is None:
                return {"ok": False, "error": "not_found"}
        view, error = self._check_view(method, params.get("view"))
        if error:
            return {"ok": False, "error": error}
        # Unknown view_ids are accepted (tests fabricate view ids in payloads).
        current = self.views.get(view_id)
        if current is not None and params.get("hash") and params["hash"] != current["hash"]:
            return {"ok": False, "error": "hash_conflict"}
        return {"ok": True, "view": self._store_view(view, view_id)}

    def _views_publish(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        user_id = params.get("user_id")
        if not user_id:
            return {"ok": False, "error": "invalid_arguments"}
        view, error = self._check_view(method, params.get("view"))
        if error:
            return {"ok": False, "error": error}
        if view.get("type") != "home":
            self._violate(f"{method}: view.type must be 'home', got {view.get('type')!r}")
        existing = self.home_views.get(user_id)
        stored = self._store_view(view, existing["id"] if existing else self._next_id("V"))
        self.home_views[user_id] = stored
        return {"ok": True, "view": stored}

    def _files_get_upload_url(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        filename, length = params.get("filename"), params.get("length")
        try:
            length = int(length)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return {"ok": False, "error": "invalid_arguments"}
        if not filename:
            return {"ok": False, "error": "invalid_arguments"}
        file_id = self._next_id("F")
        self._pending_uploads[file_id] = {"filename": filename, "length": length, "content": None}
        return {"ok": True, "upload_url": f"{self.base_url}/upload/{file_id}", "file_id": file_id}

    def _files_complete_upload(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        files = params.get("files")
        if not isinstance(files, list) or not files:
            return {"ok": False, "error": "invalid_arguments"}
        channel_id = params.get("channel_id")
        channels = params.get("channels")
        if not channel_id and channels:
            channel_id = channels.split(",")[0] if isinstance(channels, str) else channels[0]
        out = []
        for entry in files:
            fid = entry.get("id") if isinstance(entry, dict) else None
            pending = self._pending_uploads.get(fid) if fid else None
            if pending is None:
                return {"ok": False, "error": "file_not_found"}
            if pending["content"] is None:
                self._violate(f"{method}: file {fid} completed before its bytes were uploaded")
                return {"ok": False, "error": "file_not_found"}
            if len(pending["content"]) != pending["length"]:
                self._violate(
                    f"{method}: file {fid} declared length {pending['length']} but "
                    f"{len(pending['content'])} bytes were uploaded"
                )
            title = entry.get("title") or pending["filename"]
            del self._pending_uploads[fid]
            self.files[fid] = {
                "content": pending["content"],
                "title": title,
                "channel_id": channel_id,
                "filename": pending["filename"],
                "initial_comment": params.get("initial_comment"),
                "thread_ts": params.get("thread_ts"),
            }
            out.append(
                {
                    "id": fid,
                    "name": pending["filename"],
                    "title": title,
                    "size": len(pending["content"]),
                    "permalink": f"https://test.slack.com/files/{BOT_USER_ID}/{fid}",
                }
            )
        return {"ok": True, "files": out}

    def _files_upload_legacy(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self._violate(f"{method}: files.upload is retired; use files_upload_v2")
        return {"ok": False, "error": "method_deprecated"}

    # ------------------------------------------------------------------ limit checks

    def _blocks_shape_error(self, where: str, blocks: Any) -> bool:
        if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
            self._violate(f"{where}: blocks must be a list of objects, got {_short(blocks, 80)}")
            return True
        return False

    def _check_message(self, method: str, params: dict[str, Any]) -> str | None:
        """Check a message payload; return an error code for hard failures."""
        blocks = params.get("blocks")
        if blocks is not None:
            if self._blocks_shape_error(method, blocks):
                return "invalid_blocks"
            if len(blocks) > 50:
                self._violate(f"{method}: message has {len(blocks)} blocks (max 50)")
            self._walk_blocks(method, "blocks", blocks)
        text = params.get("text")
        if isinstance(text, str) and len(text) > 40000:
            self._violate(f"{method}: message text is {len(text)} chars (max 40000)")
        return None

    def _check_view(self, method: str, view: Any) -> tuple[dict[str, Any], str | None]:
        view = _maybe_json(view)
        if not isinstance(view, dict):
            self._violate(f"{method}: view must be an object, got {_short(view, 80)}")
            return {}, "invalid_arguments"
        where = f"{method}: view"
        vtype = view.get("type")
        if vtype not in ("modal", "home"):
            self._violate(f"{where}.type must be 'modal' or 'home', got {vtype!r}")
        for key in ("title", "submit", "close"):
            if key in view:
                self._text(f"{where}.{key}", view[key], max_len=24, plain_only=True)
        if vtype == "modal" and "title" not in view:
            self._violate(f"{where}.title is required for modals")
        blocks = view.get("blocks", [])
        if self._blocks_shape_error(method, blocks):
            return view, "invalid_blocks"
        if len(blocks) > 100:
            self._violate(f"{where} has {len(blocks)} blocks (max 100)")
        if (
            vtype == "modal"
            and "submit" not in view
            and any(b.get("type") == "input" for b in blocks)
        ):
            self._violate(f"{where} has input blocks but no submit button")
        self._max_len(f"{where}.private_metadata", view.get("private_metadata"), 3000)
        self._max_len(f"{where}.callback_id", view.get("callback_id"), 255)
        self._max_len(f"{where}.external_id", view.get("external_id"), 255)
        self._walk_blocks(method, "view.blocks", blocks)
        return view, None

    def _max_len(self, where: str, value: Any, limit: int) -> None:
        if isinstance(value, str) and len(value) > limit:
            self._violate(f"{where} is {len(value)} chars (max {limit})")

    def _text(
        self,
        where: str,
        obj: Any,
        *,
        max_len: int = 3000,
        plain_only: bool = False,
        required: bool = True,
    ) -> None:
        if obj is None:
            if required:
                self._violate(f"{where}: text object is missing")
            return
        if not isinstance(obj, dict):
            self._violate(f"{where}: text object must be an object, got {_short(obj, 60)}")
            return
        ttype = obj.get("type")
        if ttype not in ("plain_text", "mrkdwn"):
            self._violate(f"{where}: text object type {ttype!r} is not plain_text/mrkdwn")
        elif plain_only and ttype != "plain_text":
            self._violate(f"{where}: must be plain_text, got {ttype}")
        elif ttype == "mrkdwn" and "emoji" in obj:
            self._violate(f"{where}: mrkdwn text objects do not accept 'emoji'")
        text = obj.get("text")
        if not isinstance(text, str):
            self._violate(f"{where}: text must be a string, got {_short(text, 60)}")
        elif not text:
            self._violate(f"{where}: text must not be empty")
        elif len(text) > min(max_len, 3000):
            self._violate(f"{where}: text is {len(text)} chars (max {min(max_len, 3000)})")

    def _ids(self, where: str, obj: dict[str, Any]) -> None:
        for key in ("block_id", "action_id"):
            self._max_len(f"{where}.{key}", obj.get(key), 255)

    def _walk_blocks(self, method: str, path: str, blocks: Iterable[dict[str, Any]]) -> None:
        if not self.check_blocks:
            return
        block_ids: set[str] = set()
        for i, block in enumerate(blocks):
            where = f"{method}: {path}[{i}]"
            bid = block.get("block_id")
            if isinstance(bid, str):
                if bid in block_ids:
                    self._violate(f"{where}.block_id {bid!r} is duplicated")
                block_ids.add(bid)
            self._block(where, block)

    def _block(self, where: str, block: dict[str, Any]) -> None:
        btype = block.get("type")
        self._ids(where, block)
        if btype not in KNOWN_BLOCKS:
            self._violate(f"{where}: unknown block type {btype!r}")
        elif btype == "section":
            self._section(where, block)
        elif btype == "context":
            elements = self._list(where, block, "elements", 10)
            for j, el in enumerate(elements):
                if isinstance(el, dict) and el.get("type") == "image":
                    continue
                self._text(f"{where}.elements[{j}]", el)
        elif btype == "actions":
            elements = self._list(where, block, "elements", 25)
            for j, el in enumerate(elements):
                self._element(f"{where}.elements[{j}]", el)
        elif btype == "input":
            self._text(f"{where}.label", block.get("label"), max_len=2000, plain_only=True)
            self._text(
                f"{where}.hint", block.get("hint"), max_len=2000, plain_only=True, required=False
            )
            if "element" not in block:
                self._violate(f"{where}: input block needs an element")
            else:
                self._element(f"{where}.element", block["element"])
        elif btype == "header":
            self._text(f"{where}.text", block.get("text"), max_len=150, plain_only=True)

    def _list(self, where: str, obj: dict[str, Any], key: str, limit: int) -> list[Any]:
        value = obj.get(key)
        if not isinstance(value, list):
            self._violate(f"{where}.{key} must be a list, got {_short(value, 60)}")
            return []
        if len(value) > limit:
            self._violate(f"{where}.{key} has {len(value)} items (max {limit})")
        return value

    def _section(self, where: str, block: dict[str, Any]) -> None:
        if block.get("text") is None and not block.get("fields"):
            self._violate(f"{where}: section needs text or fields")
        if block.get("text") is not None:
            self._text(f"{where}.text", block["text"])
        if block.get("fields") is not None:
            fields = self._list(where, block, "fields", 10)
            for j, fld in enumerate(fields):
                self._text(f"{where}.fields[{j}]", fld, max_len=2000)
        if block.get("accessory") is not None:
            self._element(f"{where}.accessory", block["accessory"])

    def _element(self, where: str, el: Any) -> None:
        if not isinstance(el, dict):
            self._violate(f"{where}: element must be an object, got {_short(el, 60)}")
            return
        etype = el.get("type")
        self._ids(where, el)
        if etype not in KNOWN_ELEMENTS:
            self._violate(f"{where}: unknown element type {etype!r}")
            return
        if "placeholder" in el:
            self._text(f"{where}.placeholder", el["placeholder"], max_len=150, plain_only=True)
        if etype == "button":
            self._text(f"{where}.text", el.get("text"), max_len=75, plain_only=True)
            self._max_len(f"{where}.value", el.get("value"), 2000)
            self._max_len(f"{where}.url", el.get("url"), 3000)
        elif etype in OPTION_LIMITS:
            self._options(where, el, etype)
        elif etype == "plain_text_input":
            self._max_len(f"{where}.initial_value", el.get("initial_value"), 3000)
            for key in ("max_length", "min_length"):
                value = el.get(key)
                if isinstance(value, int) and value > 3000:
                    self._violate(f"{where}.{key} is {value} (max 3000)")

    def _options(self, where: str, el: dict[str, Any], etype: str) -> None:
        limit = OPTION_LIMITS[etype]
        plain_only = etype in ("static_select", "multi_static_select", "overflow")
        options: list[Any] = []
        if "option_groups" in el:
            groups = self._list(where, el, "option_groups", 100)
            for g, group in enumerate(groups):
                if isinstance(group, dict):
                    self._text(f"{where}.option_groups[{g}].label", group.get("label"), max_len=75)
                    options.extend(self._list(f"{where}.option_groups[{g}]", group, "options", 100))
        else:
            options = self._list(where, el, "options", limit)
        for j, opt in enumerate(options):
            owhere = f"{where}.options[{j}]"
            if not isinstance(opt, dict):
                self._violate(f"{owhere}: option must be an object")
                continue
            self._text(f"{owhere}.text", opt.get("text"), max_len=75, plain_only=plain_only)
            self._max_len(f"{owhere}.value", opt.get("value"), 150)
        initial = [el["initial_option"]] if "initial_option" in el else el.get("initial_options")
        for opt in initial or []:
            if opt not in options:
                self._violate(f"{where}: initial option {_short(opt, 80)} is not one of options")

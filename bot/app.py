"""The Bolt app, the WSGI entry point and the process runtime that ties them together.

Nothing here talks to Slack at import time: the runtime is built by `python -m bot serve` (or
a test) and only then may it call Slack.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from slack_bolt import App, BoltResponse
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.request import BoltRequest
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.signature import SignatureVerifier

from bot.config import Settings
from bot.db import Database
from bot.deliveries import DeliveryService
from bot.profiles import Profiles

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024


def make_client(settings: Settings) -> WebClient:
    """The one Slack client: retries on rate limits (honouring Retry-After) and on hiccups."""
    return WebClient(
        token=settings.slack_bot_token or None,
        base_url=settings.slack_api_url,
        timeout=10,
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=2),
            RateLimitErrorRetryHandler(max_retry_count=2),
            ServerErrorRetryHandler(max_retry_count=1),
        ],
    )


@dataclass
class Runtime:
    """Everything one bot process holds: settings, database, Slack client, Bolt app, sender."""

    settings: Settings
    db: Database
    client: WebClient
    profiles: Profiles
    deliveries: DeliveryService
    app: App

    def start_background(self) -> None:
        self.deliveries.start()
        from bot.overdue import start_overdue_check

        start_overdue_check(self)

    def shutdown(self) -> None:
        self.deliveries.shutdown()
        self.db.dispose()


def _authorizer(client: WebClient, settings: Settings) -> Callable[..., AuthorizeResult]:
    """Single-workspace authorisation that calls `auth.test` once, lazily, then caches it."""
    cached: dict[str, AuthorizeResult] = {}

    def authorize(enterprise_id: str | None, team_id: str | None, **_: Any) -> AuthorizeResult:
        result = cached.get("result")
        if result is None:
            result = AuthorizeResult.from_auth_test_response(
                auth_test_response=client.auth_test(),
                bot_token=settings.slack_bot_token,
            )
            cached["result"] = result
        return result

    return authorize


def build_runtime(settings: Settings, db: Database | None = None) -> Runtime:
    """Assemble the process: no Slack call happens here."""
    from bot import listeners, messages  # noqa: F401  (registers delivery kinds)

    db = db or Database(settings.database_url, pool_size=max(10, settings.web_threads // 2))
    client = make_client(settings)
    profiles = Profiles(db, client, settings.default_locale)
    deliveries = DeliveryService(db, client, profiles, settings)
    app = App(
        client=client,
        authorize=_authorizer(client, settings),
        signing_secret=settings.slack_signing_secret or "socket-mode-no-secret",
        request_verification_enabled=not settings.socket_mode,
        listener_executor=ThreadPoolExecutor(
            max_workers=settings.listener_threads, thread_name_prefix="listener"
        ),
        process_before_response=False,
        raise_error_for_unhandled_request=False,
    )
    runtime = Runtime(settings, db, client, profiles, deliveries, app)
    listeners.register(app, runtime)
    return runtime


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    headers = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers[key[5:].replace("_", "-").lower()] = value
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    return headers


def _plain(start_response: Callable[..., Any], status: str, body: str) -> Iterable[bytes]:
    data = body.encode()
    start_response(
        status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data)))]
    )
    return [data]


def _looks_well_formed(body: str, content_type: str) -> bool:
    """Reject bodies Bolt would choke on (it parses before dispatch and raises on bad JSON)."""
    if "application/json" in content_type:
        try:
            return _shape_ok(json.loads(body))
        except ValueError:
            return False
    form = parse_qs(body)
    payload = form.get("payload")
    if payload:
        try:
            return _shape_ok(json.loads(payload[0]))
        except ValueError:
            return False
    if "command" in form:  # a slash command always names who ran it and a trigger
        return bool(form.get("user_id")) and bool(form.get("trigger_id"))
    return True


def _shape_ok(data: Any) -> bool:
    """The parts of a payload Bolt indexes without checking must have the type it expects
    (a `null` view or actions list, or an event that is a list, raise inside Bolt)."""
    if not isinstance(data, dict):
        return False
    kind = data.get("type")
    if kind == "block_actions":
        actions = data.get("actions")
        if not isinstance(actions, list) or not actions:
            return False
        if not all(isinstance(a, dict) for a in actions):
            return False
    if kind in ("view_submission", "view_closed") and not isinstance(data.get("view"), dict):
        return False
    if "event" in data and not isinstance(data["event"], dict):
        return False
    nested = ("user", "team", "enterprise", "channel", "container", "view", "message")
    return all(data.get(key) is None or isinstance(data[key], dict) for key in nested)


def _signed(verifier: SignatureVerifier, body: str, headers: dict[str, str]) -> bool:
    """Slack's signature check; a malformed header (say a timestamp that is not a number,
    which slack_sdk passes to `int()`) is an invalid signature, not a 500."""
    try:
        return verifier.is_valid_request(body, headers)
    except ValueError:
        return False


def make_wsgi(runtime: Runtime) -> Callable[..., Iterable[bytes]]:
    """The WSGI app: `POST /slack/events`, `GET /healthz`; never a 5xx for bad input."""
    verifier = SignatureVerifier(runtime.settings.slack_signing_secret or "unused")

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/healthz":
            if runtime.db.ping():
                return _plain(start_response, "200 OK", "ok")
            return _plain(start_response, "503 Service Unavailable", "database unavailable")
        if path != "/slack/events":
            return _plain(start_response, "404 Not Found", "not found")
        if method != "POST":
            return _plain(start_response, "405 Method Not Allowed", "POST only")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > MAX_BODY_BYTES:
            return _plain(start_response, "413 Payload Too Large", "too large")
        raw = environ["wsgi.input"].read(length) if length else b""
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            return _plain(start_response, "400 Bad Request", "bad encoding")
        headers = _headers(environ)
        if runtime.settings.socket_mode or not _signed(verifier, body, headers):
            return _plain(start_response, "401 Unauthorized", "invalid signature")
        if not _looks_well_formed(body, headers.get("content-type", "")):
            return _plain(start_response, "400 Bad Request", "malformed body")
        try:
            bolt_req = BoltRequest(
                body=body, query=environ.get("QUERY_STRING", ""), headers=headers
            )
            resp: BoltResponse = runtime.app.dispatch(bolt_req)
        except Exception:
            error_id = uuid.uuid4().hex[:8]
            log.exception("request failed before dispatch (error id %s)", error_id)
            return _plain(start_response, "400 Bad Request", f"bad request {error_id}")
        status = resp.status
        data = (resp.body or "").encode()
        out_headers = [(k, v) for k, vs in resp.headers.items() for v in vs]
        out_headers = [(k, v) for k, v in out_headers if k.lower() != "content-length"]
        out_headers.append(("Content-Length", str(len(data))))
        start_response(f"{status} {_reason(status)}", out_headers)
        return [data]

    return wsgi


def _reason(status: int) -> str:
    return {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}.get(
        status, "Status"
    )

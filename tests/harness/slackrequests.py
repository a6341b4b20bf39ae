"""Drive the bot's HTTP endpoint exactly as Slack does: signed slash commands, interactivity
payloads and Events API callbacks, sent over real HTTP with only the standard library.

Every method returns a ``Response`` and never raises on HTTP error statuses.  Options accepted
by every sending method:

* ``timestamp``  override X-Slack-Request-Timestamp (int seconds; e.g. stale requests)
* ``signature``  override X-Slack-Signature verbatim
* ``sign``       False omits both signing headers
* ``retry_num``  adds X-Slack-Retry-Num / X-Slack-Retry-Reason: http_timeout
* ``headers``    extra request headers
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

if TYPE_CHECKING:
    from tests.harness.fakeslack import FakeSlack

TIMEOUT = 10.0


@dataclass
class Response:
    status: int
    body: str
    headers: dict[str, str]
    elapsed: float
    response_url: str | None = None
    trigger_id: str | None = None
    payload: dict[str, Any] | None = field(default=None, repr=False)  # what was sent

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def sign(signing_secret: str, timestamp: int | str, body: str | bytes) -> str:
    """Slack's v0 request signature."""
    if isinstance(body, bytes):
        body = body.decode("utf-8")
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()


class SlackRequests:
    def __init__(
        self,
        base_url: str,
        signing_secret: str,
        fake: FakeSlack | None = None,
        team_id: str = "T0001",
    ) -> None:
        split = urlsplit(base_url)
        if split.scheme not in ("http", "https"):
            raise ValueError(f"base_url must be http(s): {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._https = split.scheme == "https"
        self._netloc = split.netloc
        self._prefix = split.path.rstrip("/")
        self.signing_secret = signing_secret
        self.fake = fake
        self.team_id = team_id
        self.api_app_id = "A0001"
        self.verification_token = "verification-token"

    # ------------------------------------------------------------------ transport

    def _send(
        self,
        method: str,
        path: str,
        body: bytes,
        content_type: str | None,
        *,
        timestamp: int | str | None = None,
        signature: str | None = None,
        sign: bool = True,
        retry_num: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        hdrs: dict[str, str] = {"User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)"}
        if content_type:
            hdrs["Content-Type"] = content_type
        if sign:
            ts = str(int(time.time())) if timestamp is None else str(timestamp)
            hdrs["X-Slack-Request-Timestamp"] = ts
            hdrs["X-Slack-Signature"] = signature or _sign(self.signing_secret, ts, body)
        if retry_num is not None:
            hdrs["X-Slack-Retry-Num"] = str(retry_num)
            hdrs["X-Slack-Retry-Reason"] = "http_timeout"
        hdrs.update(headers or {})
        conn_cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        conn = conn_cls(self._netloc, timeout=TIMEOUT)
        started = time.monotonic()
        try:
            conn.request(method, self._prefix + path, body=body or None, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            return Response(
                status=resp.status,
                body=data.decode("utf-8", "replace"),
                headers={k: v for k, v in resp.getheaders()},
                elapsed=time.monotonic() - started,
            )
        finally:
            conn.close()

    def _post_form(self, fields: dict[str, Any], **opts: Any) -> Response:
        body = urlencode(fields).encode()
        return self._send(
            "POST", "/slack/events", body, "application/x-www-form-urlencoded", **opts
        )

    def _post_payload(self, payload: dict[str, Any], **opts: Any) -> Response:
        resp = self._post_form({"payload": json.dumps(payload, ensure_ascii=False)}, **opts)
        resp.payload = payload
        resp.trigger_id = payload.get("trigger_id")
        resp.response_url = payload.get("response_url")
        return resp

    def _trigger(self) -> str:
        if self.fake is not None:
            return self.fake.issue_trigger_id()
        return f"{int(time.time())}.{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex}"

    def _response_url(self) -> str:
        if self.fake is not None:
            return self.fake.new_response_url()
        return f"https://hooks.slack.com/actions/{self.team_id}/1/{uuid.uuid4().hex}"

    def _user(self, user_id: str) -> dict[str, Any]:
        return {
            "id": user_id,
            "username": user_id.lower(),
            "name": user_id.lower(),
            "team_id": self.team_id,
        }

    # ------------------------------------------------------------------ Slack requests

    def command(
        self,
        text: str = "",
        user_id: str = "U_REPORTER",
        command: str = "/mistake",
        trigger_id: str | None = None,
        channel_id: str = "C0001",
        **opts: Any,
    ) -> Response:
        """A slash command invocation (form-encoded, like Slack)."""
        if self.fake is not None:
            response_url = self.fake.new_response_url()
        else:
            response_url = f"https://hooks.slack.com/commands/{self.team_id}/1/{uuid.uuid4().hex}"
        trigger_id = trigger_id if trigger_id is not None else self._trigger()
        fields = {
            "token": self.verification_token,
            "team_id": self.team_id,
            "team_domain": "test",
            "channel_id": channel_id,
            "channel_name": "directmessage" if channel_id.startswith("D") else "general",
            "user_id": user_id,
            "user_name": user_id.lower(),
            "command": command,
            "text": text,
            "api_app_id": self.api_app_id,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": trigger_id,
        }
        resp = self._post_form(fields, **opts)
        resp.payload = fields
        resp.response_url = response_url
        resp.trigger_id = trigger_id
        return resp

    def block_action(
        self,
        user_id: str,
        action_id: str,
        value: str | None = None,
        block_id: str = "b",
        container: dict[str, Any] | None = None,
        message: dict[str, Any] | None = None,
        view: dict[str, Any] | None = None,
        channel_id: str | None = None,
        action_type: str = "button",
        selected: Any = None,
        **opts: Any,
    ) -> Response:
        """A block_actions interactivity payload (a button click / select change)."""
        action: dict[str, Any] = {
            "action_id": action_id,
            "block_id": block_id,
            "type": action_type,
            "action_ts": f"{time.time():.6f}",
        }
        if value is not None:
            action["value"] = value
        if action_type == "button":
            action["text"] = {"type": "plain_text", "text": action_id, "emoji": True}
        elif action_type == "users_select":
            action["selected_user"] = selected
        elif action_type in ("static_select", "overflow", "radio_buttons", "external_select"):
            action["selected_option"] = _option(selected)
        elif action_type in ("multi_static_select", "checkboxes"):
            action["selected_options"] = [_option(s) for s in selected or []]
        elif action_type == "multi_users_select":
            action["selected_users"] = list(selected or [])
        elif action_type == "conversations_select":
            action["selected_conversation"] = selected
        elif action_type == "channels_select":
            action["selected_channel"] = selected
        elif action_type == "datepicker":
            action["selected_date"] = selected
        elif action_type == "timepicker":
            action["selected_time"] = selected
        elif action_type == "datetimepicker":
            action["selected_date_time"] = selected

        if container is None:
            if view is not None:
                container = {"type": "view", "view_id": view.get("id", "V1")}
            else:
                container = {
                    "type": "message",
                    "message_ts": (message or {}).get("ts", f"{time.time():.6f}"),
                    "channel_id": channel_id,
                    "is_ephemeral": False,
                }
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": self._user(user_id),
            "api_app_id": self.api_app_id,
            "token": self.verification_token,
            "container": container,
            "trigger_id": self._trigger(),
            "team": {"id": self.team_id, "domain": "test"},
            "enterprise": None,
            "is_enterprise_install": False,
            "actions": [action],
        }
        if container.get("type") == "message":
            payload["response_url"] = self._response_url()
        if channel_id is not None:
            payload["channel"] = {"id": channel_id, "name": "general"}
        if message is not None:
            payload["message"] = message
        if view is not None:
            payload["view"] = view
        return self._post_payload(payload, **opts)

    def _view(
        self,
        callback_id: str,
        values: dict[str, Any],
        private_metadata: str,
        view_id: str,
        hash: str,
        blocks: list[dict[str, Any]] | None,
    ) -> dict[str, Any]:
        return {
            "id": view_id,
            "team_id": self.team_id,
            "type": "modal",
            "blocks": blocks or [],
            "private_metadata": private_metadata,
            "callback_id": callback_id,
            "state": {"values": values},
            "hash": hash,
            "title": {"type": "plain_text", "text": "Modal"},
            "clear_on_close": False,
            "notify_on_close": False,
            "close": None,
            "submit": {"type": "plain_text", "text": "Submit"},
            "previous_view_id": None,
            "root_view_id": view_id,
            "app_id": self.api_app_id,
            "external_id": "",
            "app_installed_team_id": self.team_id,
            "bot_id": "BBOT",
        }

    def view_submission(
        self,
        user_id: str,
        callback_id: str,
        values: dict[str, Any],
        private_metadata: str = "",
        view_id: str = "V1",
        hash: str = "h",
        blocks: list[dict[str, Any]] | None = None,
        response_urls: list[dict[str, Any]] | None = None,
        **opts: Any,
    ) -> Response:
        """A view_submission payload. ``values`` is ``{block_id: {action_id: value}}``
        (build values with ``plain()``, ``user()``, ``select()``, ...)."""
        payload = {
            "type": "view_submission",
            "team": {"id": self.team_id, "domain": "test"},
            "user": self._user(user_id),
            "api_app_id": self.api_app_id,
            "token": self.verification_token,
            "trigger_id": self._trigger(),
            "view": self._view(callback_id, values, private_metadata, view_id, hash, blocks),
            "response_urls": response_urls or [],
            "is_enterprise_install": False,
            "enterprise": None,
        }
        return self._post_payload(payload, **opts)

    def view_closed(
        self,
        user_id: str,
        callback_id: str,
        values: dict[str, Any] | None = None,
        private_metadata: str = "",
        view_id: str = "V1",
        hash: str = "h",
        is_cleared: bool = False,
        **opts: Any,
    ) -> Response:
        payload = {
            "type": "view_closed",
            "team": {"id": self.team_id, "domain": "test"},
            "user": self._user(user_id),
            "api_app_id": self.api_app_id,
            "token": self.verification_token,
            "view": self._view(callback_id, values or {}, private_metadata, view_id, hash, None),
            "is_cleared": is_cleared,
            "is_enterprise_install": False,
            "enterprise": None,
        }
        return self._post_payload(payload, **opts)

    def event(self, event: dict[str, Any], event_id: str | None = None, **opts: Any) -> Response:
        """An Events API ``event_callback`` (JSON body)."""
        now = int(time.time())
        event = {"event_ts": f"{time.time():.6f}", **event}
        payload = {
            "token": self.verification_token,
            "team_id": self.team_id,
            "api_app_id": self.api_app_id,
            "event": event,
            "type": "event_callback",
            "event_id": event_id or "Ev" + uuid.uuid4().hex[:10].upper(),
            "event_time": now,
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.team_id,
                    "user_id": "UBOT",
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": uuid.uuid4().hex,
        }
        resp = self.raw(json.dumps(payload, ensure_ascii=False), "application/json", **opts)
        resp.payload = payload
        return resp

    def url_verification(self, challenge: str = "challenge-token", **opts: Any) -> Response:
        payload = {
            "token": self.verification_token,
            "challenge": challenge,
            "type": "url_verification",
        }
        resp = self.raw(json.dumps(payload), "application/json", **opts)
        resp.payload = payload
        return resp

    def raw(
        self,
        body: bytes | str,
        content_type: str | None = "application/x-www-form-urlencoded",
        path: str = "/slack/events",
        method: str = "POST",
        **opts: Any,
    ) -> Response:
        """Send an arbitrary body (signed unless ``sign=False``)."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        return self._send(method, path, data, content_type, **opts)

    def get(self, path: str, **opts: Any) -> Response:
        """Plain unsigned GET (e.g. /healthz)."""
        opts.setdefault("sign", False)
        return self._send("GET", path, b"", None, **opts)


_sign = sign


def _option(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, dict):
        return value
    return {"value": value, "text": {"type": "plain_text", "text": str(value), "emoji": True}}


# ---------------------------------------------------------------- state.values builders


def plain(value: str | None) -> dict[str, Any]:
    return {"type": "plain_text_input", "value": value}


def user(uid: str | None) -> dict[str, Any]:
    return {"type": "users_select", "selected_user": uid}


def users(uids: list[str]) -> dict[str, Any]:
    return {"type": "multi_users_select", "selected_users": list(uids)}


def select(value: str | None, text: str | None = None) -> dict[str, Any]:
    opt = _option(value)
    if opt is not None and text is not None:
        opt["text"]["text"] = text
    return {"type": "static_select", "selected_option": opt}


def radio(value: str | None, text: str | None = None) -> dict[str, Any]:
    return {**select(value, text), "type": "radio_buttons"}


def checkboxes(values: list[str]) -> dict[str, Any]:
    return {"type": "checkboxes", "selected_options": [_option(v) for v in values]}


def datetime_(epoch: int | None) -> dict[str, Any]:
    return {"type": "datetimepicker", "selected_date_time": epoch}


def date(iso: str | None) -> dict[str, Any]:
    return {"type": "datepicker", "selected_date": iso}


def conversation(cid: str | None) -> dict[str, Any]:
    return {"type": "conversations_select", "selected_conversation": cid}

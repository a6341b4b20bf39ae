"""The one error handler: log with an id, tell the person something went wrong, no traceback."""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from slack_bolt import App, BoltResponse

from bot.i18n import t

if TYPE_CHECKING:
    from bot.app import Runtime

log = logging.getLogger(__name__)


def user_of(body: dict[str, Any]) -> str | None:
    user = body.get("user")
    if isinstance(user, dict):
        return user.get("id")
    return body.get("user_id") or (body.get("event") or {}).get("user")


def register(app: App, runtime: Runtime) -> None:
    @app.error
    def handle_error(
        error: Exception, body: dict[str, Any], response: BoltResponse | None
    ) -> BoltResponse | None:
        error_id = uuid.uuid4().hex[:8]
        log.error("listener failed (error id %s)", error_id, exc_info=error)
        user_id = user_of(body or {})
        if user_id:
            try:
                locale = runtime.profiles.get(user_id).locale
                text = t(locale, "error.generic", error_id=error_id)
                response_url = body.get("response_url") or next(
                    (r.get("response_url") for r in body.get("response_urls") or []), None
                )
                if response_url:
                    from slack_sdk.webhook import WebhookClient

                    WebhookClient(response_url, timeout=5).send(
                        text=text, response_type="ephemeral", replace_original=False
                    )
                else:
                    runtime.client.chat_postMessage(
                        channel=runtime.deliveries.dm_channel(user_id), text=text
                    )
            except Exception:
                log.warning("could not tell %s about error %s", user_id, error_id, exc_info=True)
        # Before ack(): answer 200 so Slack shows no generic failure on top of our note.
        return BoltResponse(status=200, body="") if response is not None else None

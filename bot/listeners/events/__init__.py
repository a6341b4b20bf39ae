"""Events API: de-duplicated on `event_id` (Slack retries deliveries it thinks were lost)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from slack_bolt import App, BoltResponse
from sqlalchemy.exc import IntegrityError

from bot.listeners.events import home
from bot.models import SlackEvent
from bot.types import utcnow

if TYPE_CHECKING:
    from bot.app import Runtime


def register(app: App, runtime: Runtime) -> None:
    @app.middleware
    def dedupe_events(body: dict[str, Any], next: Callable[[], BoltResponse]) -> BoltResponse:
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        if event_id:
            try:
                with runtime.db.session() as s:
                    s.add(SlackEvent(event_id=str(event_id)[:64], received_at=utcnow()))
            except IntegrityError:
                return BoltResponse(status=200, body="")  # seen before: acknowledge, do nothing
        return next()

    app.event("app_home_opened")(home.handler(runtime))

"""App Home: each person's open cases and the reports waiting for their sign-off."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from slack_sdk import WebClient
from sqlalchemy import func, select

from bot.models import OPEN_STATES, CaseState, Incident, Promise, PromiseStatus
from bot.render import Renderer

if TYPE_CHECKING:
    from bot.app import Runtime


def handler(runtime: Runtime) -> Callable[..., None]:
    def handle_home(event: dict[str, Any], client: WebClient) -> None:
        if event.get("tab", "home") != "home":
            return
        user = str(event.get("user") or "")
        if not user:
            return
        with runtime.db.read() as s:
            mine = list(
                s.scalars(
                    select(Incident)
                    .where(Incident.reporter_id == user, Incident.state.in_(OPEN_STATES))
                    .order_by(Incident.created_at.desc())
                    .limit(20)
                )
            )
            waiting = list(
                s.scalars(
                    select(Incident)
                    .where(Incident.manager_id == user, Incident.state == CaseState.REPORTED)
                    .order_by(Incident.created_at)
                    .limit(20)
                )
            )
            ids = [c.id for c in mine]
            next_due: dict[int, Any] = {}
            for incident_id, due_at in s.execute(
                select(Promise.incident_id, func.min(Promise.due_at))
                .where(Promise.incident_id.in_(ids), Promise.status == PromiseStatus.PENDING)
                .group_by(Promise.incident_id)
            ):
                next_due[incident_id] = due_at
        profile = runtime.profiles.get(user)
        view = Renderer(profile.locale, profile.tz).blocks(
            "home", mine=mine, waiting=waiting, next_due=next_due
        )
        client.views_publish(user_id=user, view=view)

    return handle_home

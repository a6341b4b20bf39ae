"""`/mistake promise [case]`, `/mistake list` and `/mistake status <case>`.

`promise` opens the promise modal at once (the trigger_id lives 3 s): for the named case, the
only open case, or with a case picker when the reporter has several.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slack_bolt import Respond
from slack_sdk import WebClient
from sqlalchemy import or_, select

from bot import views, workflow
from bot.i18n import t
from bot.ids import COMMAND, Callback
from bot.models import OPEN_STATES, Incident, Promise
from bot.render import Renderer, escape_mrkdwn

if TYPE_CHECKING:
    from bot.app import Runtime

MAX_LISTED = 20


@dataclass
class Row:
    case: Incident
    role: str
    next: Promise | None


def _refuse(respond: Respond, locale: str, refused: workflow.Refused) -> None:
    respond(text=t(locale, refused.key, **refused.params), response_type="ephemeral")


def _ref(word: str) -> str:
    return escape_mrkdwn(word[:20])


def promise(runtime: Runtime, command: dict[str, Any], client: WebClient, respond: Respond) -> None:
    user = command["user_id"]
    team = str(command.get("team_id") or "")
    words = (command.get("text") or "").split()
    profile = runtime.profiles.get(user)
    cases: list[Incident] = []
    try:
        with runtime.db.session() as s:
            if len(words) > 1:
                incident = workflow.find_case(s, team, words[1])
                if incident is None:
                    raise workflow.Refused(
                        "refused.case_not_found", case=_ref(words[1]), command=COMMAND
                    )
                cases = [workflow.check_can_add(s, incident_id=incident.id, actor=user)]
            else:
                cases = workflow.open_cases(s, team, user)
                if not cases:
                    raise workflow.Refused("refused.no_open_case", command=COMMAND)
    except workflow.Refused as refused:
        _refuse(respond, profile.locale, refused)
        return
    if len(cases) == 1:
        view = views.promise_modal(
            profile,
            callback_id=Callback.PROMISE_ADD,
            mode="add",
            private_metadata=json.dumps({"case": cases[0].id}),
            case=cases[0],
        )
    else:
        view = views.promise_modal(
            profile,
            callback_id=Callback.PROMISE_ADD,
            mode="add",
            private_metadata=json.dumps({"pick": True}),
            cases=cases,
        )
    client.views_open(trigger_id=command["trigger_id"], view=view)


def list_cases(runtime: Runtime, command: dict[str, Any], respond: Respond) -> None:
    user = command["user_id"]
    team = str(command.get("team_id") or "")
    profile = runtime.profiles.get(user)
    with runtime.db.session() as s:
        found = list(
            s.scalars(
                select(Incident)
                .where(
                    Incident.team_id == team,
                    Incident.state.in_(OPEN_STATES),
                    or_(Incident.reporter_id == user, Incident.manager_id == user),
                )
                .order_by(Incident.seq.desc())
                .limit(MAX_LISTED)
            )
        )
        rows = [
            Row(
                c,
                "reporter" if c.reporter_id == user else "manager",
                workflow.next_pending(s, c.id),
            )
            for c in found
        ]
    r = Renderer(profile.locale, profile.tz)
    blocks = r.blocks("case_list", rows=rows, command=COMMAND)
    respond(text=r._("list.title"), blocks=blocks, response_type="ephemeral")


def status(runtime: Runtime, command: dict[str, Any], respond: Respond) -> None:
    user = command["user_id"]
    team = str(command.get("team_id") or "")
    words = (command.get("text") or "").split()
    profile = runtime.profiles.get(user)
    r = Renderer(profile.locale, profile.tz)
    try:
        with runtime.db.session() as s:
            incident = workflow.find_case(s, team, words[1]) if len(words) > 1 else None
            if incident is None:
                ref = _ref(words[1]) if len(words) > 1 else "-"
                raise workflow.Refused("refused.case_not_found", case=ref, command=COMMAND)
            if user not in (incident.reporter_id, incident.manager_id):
                raise workflow.Refused("refused.status_not_involved", case=incident.short_id)
            promises = list(
                s.scalars(
                    select(Promise)
                    .where(Promise.incident_id == incident.id)
                    .order_by(Promise.due_at, Promise.id)
                )
            )
            blocks = r.blocks("case_status", case=incident, promises=promises)
    except workflow.Refused as refused:
        _refuse(respond, profile.locale, refused)
        return
    respond(text=blocks[0]["text"]["text"], blocks=blocks, response_type="ephemeral")

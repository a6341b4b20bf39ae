"""`/mistake export <case id>`: the whole case as a Markdown file in the requester's DM.

Only the reporter and the manager of the case may export it; anyone else is refused
ephemerally, as is an unknown case id.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slack_bolt import Respond

from bot import workflow
from bot.i18n import t
from bot.ids import COMMAND
from bot.listeners.actions.apology import export_case
from bot.render import escape_mrkdwn

if TYPE_CHECKING:
    from bot.app import Runtime


def answer(runtime: Runtime, command: dict[str, Any], respond: Respond) -> None:
    user = command["user_id"]
    locale = runtime.profiles.get(user).locale
    words = (command.get("text") or "").split()
    if len(words) < 2:
        respond(text=t(locale, "export.usage", command=COMMAND), response_type="ephemeral")
        return
    try:
        with runtime.db.session() as s:
            incident = workflow.find_case(s, str(command.get("team_id") or ""), words[1])
            if incident is None:
                raise workflow.Refused(
                    "export.not_found", command=COMMAND, ref=escape_mrkdwn(words[1][:20])
                )
            incident_id = incident.id
        short, outcome = export_case(runtime, user, incident_id)
    except workflow.Refused as refused:
        respond(text=t(locale, refused.key, **refused.params), response_type="ephemeral")
        return
    respond(text=t(locale, "export.sent", case=short), response_type="ephemeral")
    runtime.deliveries.dispatch(outcome.due())

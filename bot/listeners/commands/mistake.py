"""`/mistake`: open the report modal at once, or answer a subcommand."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, Respond
from slack_sdk import WebClient

from bot import views
from bot.ids import COMMAND, SUBCOMMANDS
from bot.listeners.commands import cases, export
from bot.render import Renderer

if TYPE_CHECKING:
    from bot.app import Runtime

log = logging.getLogger(__name__)


def slack_unescape(text: str) -> str:
    """Slack sends `&`, `<` and `>` in command text as entities; the modal's plain-text input
    would show them literally (`AT&amp;T`)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def handler(runtime: Runtime) -> Callable[..., None]:
    def handle_mistake(
        ack: Ack, command: dict[str, Any], client: WebClient, respond: Respond
    ) -> None:
        text = (command.get("text") or "").strip()
        word = text.split()[0].lower() if text else ""
        user_id = command["user_id"]
        if word in SUBCOMMANDS:
            ack()
            profile = runtime.profiles.get(user_id)
            r = Renderer(profile.locale, profile.tz)
            if word == "help":
                blocks = r.blocks("help", command=COMMAND)
                respond(text=blocks[0]["text"]["text"], blocks=blocks, response_type="ephemeral")
                return
            if word == "export":
                export.answer(runtime, command, respond)
                return
            if word == "promise":
                cases.promise(runtime, command, client, respond)
                return
            if word == "list":
                cases.list_cases(runtime, command, respond)
                return
            if word == "status":
                cases.status(runtime, command, respond)
                return
            respond(
                text=r._("error.subcommand_unavailable", command=COMMAND, word=word),
                response_type="ephemeral",
            )
            return
        # Open the modal first: the trigger_id lives 3 s. At most one users.info (cached).
        ack()
        profile = runtime.profiles.get(user_id)
        view = views.report_modal(
            runtime,
            profile,
            client_name=slack_unescape(text),
            private_metadata=json.dumps({"channel": command.get("channel_id", "")}),
        )
        client.views_open(trigger_id=command["trigger_id"], view=view)

    return handle_mistake

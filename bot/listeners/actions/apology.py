"""The apology phase's buttons: draft letter or memorandum (and its language), apology done,
prevention plan, close case, export, mark a measure done.

Every handler reloads the case and lets the workflow authorise the clicking user and apply
the sign-off gate, so a forged payload gets the same refusal as a real click.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, Respond
from slack_sdk import WebClient

from bot import letters, workflow
from bot.config import LOCALES
from bot.i18n import t
from bot.ids import MEASURE_SLOTS, Action, Block, Callback, measure_block
from bot.listeners.actions.refusal import refuse
from bot.listeners.payload import metadata, user_id
from bot.messages.apology import measure_blocks
from bot.models import Incident, PreventionMeasure
from bot.render import Renderer
from bot.types import utcnow
from bot.workflow.apology import LETTER_KINDS, MAX_SECTION, MAX_TEXT, METHODS, SECTIONS, case_people

if TYPE_CHECKING:
    from bot.app import Runtime

DEFAULT_MEASURE_DUE = timedelta(days=7)


def section_block(name: str, lang: str) -> str:
    """Per language, so switching the language replaces what the inputs show."""
    return f"{name}_{lang}"


def _case_id(value: Any) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        raise workflow.Refused("refused.no_case") from None


def letter_modal(
    runtime: Runtime, actor: str, incident_id: int, kind: str, lang: str | None
) -> dict[str, Any]:
    """The draft modal, its sections rendered from the case in the chosen language."""
    if kind not in LETTER_KINDS:
        raise workflow.Refused("refused.no_case")
    profile = runtime.profiles.get(actor)  # before the session (SQLite write lock)
    lang = lang if lang in LOCALES else profile.locale
    now = utcnow()
    with runtime.db.session() as s:
        incident = workflow.check_draft(s, incident_id=incident_id, actor=actor)
        facts = workflow.case_facts(s, incident)
        texts = letters.draft_sections(
            facts,
            kind=kind,
            lang=lang,
            tz=profile.tz,
            company=runtime.settings.company_name,
            sender_name=profile.real_name,
            sender_title=profile.title,
            now=now,
        )
        return Renderer(profile.locale, profile.tz).blocks(
            "letter_modal",
            callback_id=Callback.LETTER,
            private_metadata=json.dumps({"case": incident.id, "kind": kind, "lang": lang}),
            case=incident,
            kind=kind,
            language=lang,
            languages=LOCALES,
            language_block=Block.LETTER_LANGUAGE,
            language_action=Action.LETTER_LANGUAGE,
            sections=SECTIONS,
            section_blocks={name: section_block(name, lang) for name in SECTIONS},
            texts=texts,
            max_section=MAX_SECTION,
        )


def draft_handler(runtime: Runtime, kind: str) -> Callable[..., None]:
    def handle_draft(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        ack()
        actor = user_id(body)
        try:
            view = letter_modal(runtime, actor, _case_id(action.get("value")), kind, None)
        except workflow.Refused as refused:
            refuse(runtime, respond, actor, refused)
            return
        client.views_open(trigger_id=body["trigger_id"], view=view)

    return handle_draft


def language_handler(runtime: Runtime) -> Callable[..., None]:
    """The language select inside the draft modal: re-render the sections in that language."""

    def handle_language(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient
    ) -> None:
        ack()
        actor = user_id(body)
        current = body.get("view") or {}
        meta = metadata(current)
        lang = str((action.get("selected_option") or {}).get("value") or "")
        try:
            view = letter_modal(
                runtime, actor, _case_id(meta.get("case")), str(meta.get("kind")), lang
            )
        except workflow.Refused:
            return  # the submission is checked again; nothing to update
        client.views_update(view_id=current.get("id"), hash=current.get("hash"), view=view)

    return handle_language


def apology_handler(runtime: Runtime) -> Callable[..., None]:
    def handle_apology(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        ack()
        actor = user_id(body)
        profile = runtime.profiles.get(actor)
        try:
            with runtime.db.session() as s:
                incident = workflow.check_apology(
                    s, incident_id=_case_id(action.get("value")), actor=actor
                )
                attendees = [incident.reporter_id]
                if incident.will_attend:
                    attendees.append(incident.manager_id)
                view = Renderer(profile.locale, profile.tz).blocks(
                    "apology_modal",
                    callback_id=Callback.APOLOGY,
                    private_metadata=json.dumps({"case": incident.id}),
                    case=incident,
                    methods=METHODS,
                    attendees=attendees,
                    now=utcnow().replace(second=0, microsecond=0),
                    max_text=MAX_TEXT,
                    blocks={
                        "method": Block.APOLOGY_METHOD,
                        "at": Block.APOLOGY_AT,
                        "attendees": Block.ATTENDEES,
                        "reaction": Block.CLIENT_REACTION,
                    },
                )
        except workflow.Refused as refused:
            refuse(runtime, respond, actor, refused)
            return
        client.views_open(trigger_id=body["trigger_id"], view=view)

    return handle_apology


def plan_slots(incident: Incident, measures: list[PreventionMeasure]) -> list[dict[str, Any]]:
    """The modal's measure rows: the saved measures, then empty rows (the first prefilled)."""
    slots = []
    default_due = (utcnow() + DEFAULT_MEASURE_DUE).replace(second=0, microsecond=0)
    for n in range(1, MEASURE_SLOTS + 1):
        m = measures[n - 1] if n <= len(measures) else None
        slots.append(
            {
                "n": n,
                "blocks": {p: measure_block(n, p) for p in ("what", "owner", "due")},
                "description": m.description if m else "",
                "owner": m.owner_id if m else (incident.reporter_id if n == 1 else None),
                "due": m.due_at if m else (default_due if n == 1 else None),
            }
        )
    return slots


def plan_handler(runtime: Runtime) -> Callable[..., None]:
    def handle_plan(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        ack()
        actor = user_id(body)
        profile = runtime.profiles.get(actor)
        try:
            with runtime.db.session() as s:
                incident = workflow.check_plan(
                    s, incident_id=_case_id(action.get("value")), actor=actor
                )
                plan, measures = workflow.plan_of(s, incident.id)
                view = Renderer(profile.locale, profile.tz).blocks(
                    "plan_modal",
                    callback_id=Callback.PLAN,
                    private_metadata=json.dumps({"case": incident.id}),
                    case=incident,
                    root_block=Block.ROOT_CAUSE,
                    root_cause=plan.root_cause if plan else "",
                    slots=plan_slots(incident, measures),
                    max_text=MAX_TEXT,
                )
        except workflow.Refused as refused:
            refuse(runtime, respond, actor, refused)
            return
        client.views_open(trigger_id=body["trigger_id"], view=view)

    return handle_plan


def close_handler(runtime: Runtime) -> Callable[..., None]:
    def handle_close(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond
    ) -> None:
        ack()
        actor = user_id(body)
        try:
            with runtime.db.session() as s:
                outcome = workflow.close_case(
                    s, incident_id=_case_id(action.get("value")), actor=actor, now=utcnow()
                )
                short = outcome.incident.short_id
        except workflow.Refused as refused:
            refuse(runtime, respond, actor, refused)
            return
        locale = runtime.profiles.get(actor).locale
        respond(
            text=t(locale, "closed.confirm", case=short),
            response_type="ephemeral",
            replace_original=False,
        )
        runtime.deliveries.dispatch(outcome.due())

    return handle_close


def export_case(runtime: Runtime, actor: str, incident_id: int) -> tuple[str, workflow.Outcome]:
    """Authorise, look up the names the file mentions (outside any transaction), then ask."""
    with runtime.db.session() as s:
        workflow.check_export(s, incident_id=incident_id, actor=actor)
        people = case_people(s, incident_id)
    names = {uid: runtime.profiles.get(uid).real_name for uid in sorted(people)}
    with runtime.db.session() as s:
        outcome = workflow.request_export(
            s, incident_id=incident_id, actor=actor, now=utcnow(), names=names
        )
        return outcome.incident.short_id, outcome


def export_handler(runtime: Runtime) -> Callable[..., None]:
    def handle_export(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond
    ) -> None:
        ack()
        actor = user_id(body)
        try:
            short, outcome = export_case(runtime, actor, _case_id(action.get("value")))
        except workflow.Refused as refused:
            refuse(runtime, respond, actor, refused)
            return
        locale = runtime.profiles.get(actor).locale
        respond(
            text=t(locale, "export.sent", case=short),
            response_type="ephemeral",
            replace_original=False,
        )
        runtime.deliveries.dispatch(outcome.due())

    return handle_export


def measure_done_handler(runtime: Runtime) -> Callable[..., None]:
    def handle_measure_done(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond
    ) -> None:
        ack()
        actor = user_id(body)
        profile = runtime.profiles.get(actor)
        try:
            measure_id = _case_id(action.get("value"))
            with runtime.db.session() as s:
                outcome = workflow.mark_measure_done(
                    s, measure_id=measure_id, actor=actor, now=utcnow()
                )
                measure = s.get(PreventionMeasure, measure_id)
                assert measure is not None
                r = Renderer(profile.locale, profile.tz)
                blocks = measure_blocks(r, outcome.incident, measure)
                text = r._("measure.done.fallback", case=outcome.incident.short_id)
        except workflow.Refused as refused:
            refuse(runtime, respond, actor, refused)
            return
        if (body.get("container") or {}).get("type") == "message":
            respond(text=text, blocks=blocks, replace_original=True)

    return handle_measure_done

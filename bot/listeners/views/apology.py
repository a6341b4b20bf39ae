"""Submissions of the apology phase's modals: a letter or memorandum draft, the apology log,
the prevention plan. Each validates (answering field errors), then lets the workflow store it
in one transaction; uploads and notices go out as deliveries after the ack.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack

from bot import workflow
from bot.config import LOCALES
from bot.i18n import t
from bot.ids import MEASURE_SLOTS, Block, measure_block
from bot.listeners.actions.apology import section_block
from bot.listeners.payload import metadata, state_value, text_value, user_id
from bot.types import utcnow
from bot.workflow import blame
from bot.workflow.apology import SECTIONS

if TYPE_CHECKING:
    from bot.app import Runtime

Errors = dict[str, tuple[str, dict[str, Any]]]


def _answer_errors(ack: Ack, locale: str, errors: Errors, rename: Callable[[str], str]) -> None:
    ack(
        response_action="errors",
        errors={rename(b): t(locale, key, **params) for b, (key, params) in errors.items()},
    )


def _case(meta: dict[str, Any]) -> int:
    try:
        return int(meta.get("case"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise workflow.Refused("refused.no_case") from None


def users_value(view: dict[str, Any], block_id: str) -> list[str]:
    values = ((view.get("state") or {}).get("values") or {}).get(block_id) or {}
    element = next(iter(values.values()), None)
    users = element.get("selected_users") if isinstance(element, dict) else None
    return [str(u) for u in users] if isinstance(users, list) else []


def letter_handler(runtime: Runtime) -> Callable[..., None]:
    def handle_letter(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        actor = user_id(body)
        locale = runtime.profiles.get(actor).locale
        meta = metadata(view)
        lang = str(meta.get("lang") or "")
        kind = str(meta.get("kind") or "")
        if lang not in LOCALES:
            lang = locale
        first = section_block(SECTIONS[0], lang)
        sections = {name: text_value(view, section_block(name, lang)) for name in SECTIONS}
        errors = workflow.validate_sections(sections)
        policy = runtime.settings.blame_policy
        flags = blame.flags(sections) if policy == blame.WARN else []
        if policy == blame.BLOCK:
            for name, error in blame.field_errors(sections).items():
                errors.setdefault(name, error)
        if errors:
            _answer_errors(ack, locale, errors, lambda name: section_block(name, lang))
            return
        try:
            with runtime.db.session() as s:
                outcome, _draft = workflow.save_letter(
                    s,
                    incident_id=_case(meta),
                    actor=actor,
                    kind=kind,
                    language=lang,
                    sections=sections,
                    blame_flags=flags,
                    submit_key=str(view.get("id") or "")[:64],
                    now=utcnow(),
                )
        except workflow.Refused as refused:
            ack(
                response_action="errors",
                errors={first: t(locale, refused.key, **refused.params)},
            )
            return
        ack()
        runtime.deliveries.dispatch(outcome.due())

    return handle_letter


def apology_handler(runtime: Runtime) -> Callable[..., None]:
    def handle_apology(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        actor = user_id(body)
        locale = runtime.profiles.get(actor).locale
        data = workflow.ApologyInput(
            method=str(state_value(view, Block.APOLOGY_METHOD) or ""),
            done_at=state_value(view, Block.APOLOGY_AT),
            attendees=users_value(view, Block.ATTENDEES),
            client_reaction=text_value(view, Block.CLIENT_REACTION),
        )
        now = utcnow()
        errors = workflow.validate_apology(data, now)
        if errors:
            _answer_errors(ack, locale, errors, str)
            return
        try:
            with runtime.db.session() as s:
                outcome = workflow.log_apology(
                    s, incident_id=_case(metadata(view)), actor=actor, data=data, now=now
                )
        except workflow.Refused as refused:
            ack(
                response_action="errors",
                errors={Block.APOLOGY_METHOD: t(locale, refused.key, **refused.params)},
            )
            return
        ack()
        runtime.deliveries.dispatch(outcome.due())

    return handle_apology


def _measure_slots(view: dict[str, Any]) -> list[workflow.MeasureInput | None]:
    slots: list[workflow.MeasureInput | None] = []
    for n in range(1, MEASURE_SLOTS + 1):
        what = text_value(view, measure_block(n, "what"))
        owner = str(state_value(view, measure_block(n, "owner")) or "")
        due = state_value(view, measure_block(n, "due"))
        if not what.strip() and not owner and due is None:
            slots.append(None)
        else:
            slots.append(workflow.MeasureInput(what, owner, due))
    return slots


def plan_handler(runtime: Runtime) -> Callable[..., None]:
    def handle_plan(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        actor = user_id(body)
        locale = runtime.profiles.get(actor).locale
        root_cause = text_value(view, Block.ROOT_CAUSE)
        slots = _measure_slots(view)
        now = utcnow()
        try:
            incident_id = _case(metadata(view))
            with runtime.db.session() as s:
                _plan, existing = workflow.plan_of(s, incident_id)
                errors = workflow.validate_plan(root_cause, slots, now, existing)
                if errors:
                    _answer_errors(ack, locale, errors, str)
                    return
                outcome = workflow.save_plan(
                    s,
                    incident_id=incident_id,
                    actor=actor,
                    root_cause=root_cause,
                    measures=[m for m in slots if m is not None],
                    now=now,
                )
        except workflow.Refused as refused:
            ack(
                response_action="errors",
                errors={Block.ROOT_CAUSE: t(locale, refused.key, **refused.params)},
            )
            return
        ack()
        runtime.deliveries.dispatch(outcome.due())

    return handle_plan

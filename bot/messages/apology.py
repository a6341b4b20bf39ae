"""Delivery kinds of the apology phase: letter files, the apology and closing notices, measure
reminders and case exports. Each renders the case as it is when sent, for its recipient.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import letters
from bot.deliveries import FileUpload, Outgoing, RenderContext, kind
from bot.ids import Action
from bot.models import (
    CaseState,
    Delivery,
    Incident,
    LetterDraft,
    MeasureStatus,
    PreventionMeasure,
)
from bot.render import Renderer, escape_mrkdwn
from bot.workflow.apology import apology_of, case_facts, plan_of

LOGGED_BUTTONS = (Action.PREVENTION_PLAN, Action.CLOSE_CASE, Action.EXPORT_CASE)


def _case(s: Session, d: Delivery) -> Incident:
    incident = s.get(Incident, d.incident_id)
    assert incident is not None
    return incident


def _renderer(ctx: RenderContext, user_id: str) -> Renderer:
    profile = ctx.profiles.get(user_id)
    return Renderer(profile.locale, profile.tz)


def _flag_note(r: Renderer, key: str, flags: list[dict]) -> str:
    lines = [
        r._(
            "blame.flag.line",
            field=r._(f"blame.field.{f['field']}"),
            phrase=escape_mrkdwn(str(f["match"]))[:80],
            kind=r._(f"blame.kind.{f['kind']}"),
        )
        for f in flags[:10]
    ]
    return "\n\n" + r._(key) + "\n" + "\n".join(lines)


@kind("letter_file")
def render_letter_file(s: Session, d: Delivery, ctx: RenderContext) -> Outgoing | None:
    """A saved letter or memorandum, uploaded as a file into the reporter's or manager's DM."""
    draft = s.get(LetterDraft, int(d.data["draft_id"]))
    if draft is None:
        return None
    incident = _case(s, d)
    r = _renderer(ctx, d.recipient)
    params = {
        "case": incident.short_id,
        "kind": r._(f"letter.kind.{draft.kind}"),
        "version": draft.version,
        "language": r._(f"letter.language.{draft.language}"),
        "reporter": incident.reporter_id,
    }
    mine = d.recipient == draft.created_by
    text = r._("letter.file.mine" if mine else "letter.file.other", **params)
    if draft.blame_flags:
        key = "blame.flag.reporter" if mine else "blame.flag.manager"
        text += _flag_note(r, key, draft.blame_flags)
    draft_id = draft.id

    def remember(session: Session, channel: str, file_id: str) -> None:
        row = session.scalar(
            select(LetterDraft).where(LetterDraft.id == draft_id).with_for_update()
        )
        if row is not None and file_id not in row.file_ids:
            row.file_ids = [*row.file_ids, file_id]

    title = r._("letter.file.title", **params)
    return Outgoing(
        text=text,
        file=FileUpload(
            filename=letters.filename(incident.short_id, draft.kind, draft.version, draft.language),
            title=title[:250],
            content=draft.text,
        ),
        on_sent=remember,
    )


@kind("apology_logged")
def render_apology_logged(s: Session, d: Delivery, ctx: RenderContext) -> Outgoing | None:
    incident = _case(s, d)
    apology = apology_of(s, incident.id)
    if apology is None:
        return None
    r = _renderer(ctx, d.recipient)
    plan, measures = plan_of(s, incident.id)
    blocks = r.blocks(
        "apology_logged",
        case=incident,
        apology=apology,
        attendees=" ".join(f"<@{u}>" for u in apology.attendees[:20]),
        has_plan=plan is not None and bool(measures),
        buttons=LOGGED_BUTTONS,
        value=str(incident.id),
    )
    text = r._("apology.logged.fallback", case=incident.short_id, by=apology.logged_by)
    return Outgoing(text=text, blocks=blocks)


@kind("case_closed")
def render_case_closed(s: Session, d: Delivery, ctx: RenderContext) -> Outgoing | None:
    incident = _case(s, d)
    if incident.state != CaseState.CLOSED:
        return None
    r = _renderer(ctx, d.recipient)
    _plan, measures = plan_of(s, incident.id)
    by = str(d.data.get("by") or incident.reporter_id)
    blocks = r.blocks(
        "case_closed",
        case=incident,
        by=by,
        open_measures=sum(1 for m in measures if m.status == MeasureStatus.OPEN),
        total_measures=len(measures),
        export_action=Action.EXPORT_CASE,
        value=str(incident.id),
    )
    return Outgoing(text=r._("closed.fallback", case=incident.short_id, by=by), blocks=blocks)


def measure_blocks(r: Renderer, incident: Incident, measure: PreventionMeasure) -> list:
    return r.blocks(
        "measure_due",
        case=incident,
        measure=measure,
        live=measure.status == MeasureStatus.OPEN,
        done_action=Action.MEASURE_DONE,
        value=str(measure.id),
    )


@kind("measure_due")
def render_measure_due(s: Session, d: Delivery, ctx: RenderContext) -> Outgoing | None:
    """Sent to the measure's owner on its due date, whether or not the case has closed."""
    measure = s.get(PreventionMeasure, int(d.data["measure_id"]))
    if measure is None or measure.status != MeasureStatus.OPEN:
        return None  # removed or already done: nothing to remind
    incident = _case(s, d)
    if incident.state == CaseState.WITHDRAWN:
        return None
    r = _renderer(ctx, d.recipient)
    text = r._("measure.due.fallback", case=incident.short_id)
    return Outgoing(text=text, blocks=measure_blocks(r, incident, measure))


@kind("case_export")
def render_case_export(s: Session, d: Delivery, ctx: RenderContext) -> Outgoing | None:
    """The whole case as one Markdown file in the requester's DM."""
    incident = _case(s, d)
    profile = ctx.profiles.get(d.recipient)
    r = Renderer(profile.locale, profile.tz)
    content = letters.export_markdown(
        s,
        case_facts(s, incident),
        lang=profile.locale,
        tz=profile.tz,
        known_names=dict(d.data.get("names") or {}),
    )
    return Outgoing(
        text=r._("export.comment", case=incident.short_id),
        file=FileUpload(
            filename=f"{incident.short_id}-case.md",
            title=r._("export.file_title", case=incident.short_id)[:250],
            content=content,
        ),
    )

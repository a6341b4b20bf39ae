"""Letters, memoranda and case exports: plain-text templates rendered from a case's facts.

Each letter template (templates/letters/<kind>.<lang>.md.j2) has one Jinja block per section
(opening, apology, facts, measures, closing); the draft modal shows each section in its own
input, so every rendered section is cut to Slack's 3000-character input limit.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.i18n import catalog, zone
from bot.models import AuditEvent, Decision, LetterDraft, ReportVersion, UserSetting
from bot.render import Renderer, environment, truncate
from bot.workflow.apology import SECTIONS, CaseFacts, promises_of

MAX_SECTION = 3000
MONTHS_EN = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def day(value: datetime, tz: str | None, lang: str) -> str:
    """A date as a letter writes it: 2026年11月27日 / 27 November 2026."""
    local = value.astimezone(zone(tz))
    if lang == "ja":
        return f"{local.year}年{local.month}月{local.day}日"
    return f"{local.day} {MONTHS_EN[local.month - 1]} {local.year}"


def moment(value: datetime, tz: str | None, lang: str) -> str:
    """A date and time as a letter writes it: 2026年11月27日 10時05分 / 27 November 2026, 10:05."""
    local = value.astimezone(zone(tz))
    if lang == "ja":
        return f"{day(value, tz, lang)} {local.hour}時{local.minute:02d}分"
    return f"{day(value, tz, lang)}, {local:%H:%M}"


def sender_line(name: str, title: str, lang: str) -> str:
    if not title:
        return name
    return f"{title} {name}" if lang == "ja" else f"{name}, {title}"


def template_name(kind: str, lang: str) -> str:
    return f"letters/{kind}.{lang}.md.j2"


def draft_sections(
    facts: CaseFacts,
    *,
    kind: str,
    lang: str,
    tz: str | None,
    company: str,
    sender_name: str,
    sender_title: str,
    now: datetime,
) -> dict[str, str]:
    """The default text of each section, from the case as it is now."""
    r = Renderer(lang, tz)
    incident = facts.incident
    ctx = r.context(
        case=incident,
        client=facts.report.client,
        report=facts.report,
        plan=facts.plan,
        measures=facts.measures,
        apology=facts.apology,
        company=company or r._("letter.company_placeholder"),
        sender=sender_line(sender_name or r._("letter.sender_placeholder"), sender_title, lang),
        date=day(now, tz, lang),
        noticed=moment(facts.report.noticed_at, tz, lang),
        noticed_day=day(facts.report.noticed_at, tz, lang),
        day=lambda v: day(v, tz, lang),
    )
    template = environment().get_template(template_name(kind, lang))
    context = template.new_context(ctx)
    sections = {}
    for name in SECTIONS:
        text = "".join(template.blocks[name](context)).strip("\n")
        sections[name] = truncate(text, MAX_SECTION)
    return sections


def filename(short_id: str, kind: str, version: int, lang: str) -> str:
    return f"{short_id}-{kind}-v{version}-{lang}.md"


def _names(s: Session, user_ids: set[str], known: dict[str, str]) -> dict[str, str]:
    """Display names: looked up when the export was asked for, else the cached profile."""
    rows = s.scalars(select(UserSetting).where(UserSetting.user_id.in_(user_ids)))
    found = {row.user_id: row.real_name for row in rows if row.real_name}
    found.update({uid: name for uid, name in known.items() if name})
    return {uid: f"{found[uid]} ({uid})" if uid in found else uid for uid in user_ids}


def export_markdown(
    s: Session,
    facts: CaseFacts,
    *,
    lang: str,
    tz: str | None,
    known_names: dict[str, str] | None = None,
) -> str:
    """The whole case as one Markdown file: for filing, or for the client memorandum."""
    incident = facts.incident
    versions = list(
        s.scalars(
            select(ReportVersion)
            .where(ReportVersion.incident_id == incident.id)
            .order_by(ReportVersion.version)
        )
    )
    decisions = {
        d.version: d for d in s.scalars(select(Decision).where(Decision.incident_id == incident.id))
    }
    events = list(
        s.scalars(
            select(AuditEvent)
            .where(AuditEvent.incident_id == incident.id)
            .order_by(AuditEvent.at, AuditEvent.id)
        )
    )
    drafts = list(
        s.scalars(
            select(LetterDraft)
            .where(LetterDraft.incident_id == incident.id)
            .order_by(LetterDraft.created_at, LetterDraft.id)
        )
    )
    promises = promises_of(s, incident.id)
    people = {incident.reporter_id, incident.manager_id}
    people |= {e.actor for e in events} | {v.manager_id for v in versions}
    people |= {m.owner_id for m in facts.measures}
    people |= set(facts.apology.attendees if facts.apology else [])
    r = Renderer(lang, tz)
    return r.text(
        "export/case.md.j2",
        case=incident,
        facts=facts,
        versions=versions,
        decisions=decisions,
        events=events,
        drafts=drafts,
        promises=promises,
        kept=sum(1 for p in promises if p.status == "kept" and not p.kept_late),
        kept_late=sum(1 for p in promises if p.status == "kept" and p.kept_late),
        missed=sum(1 for p in promises if p.status == "missed"),
        names=_names(s, people, known_names or {}),
        # Actions added by other parts of the workflow show as they are until translated.
        event=lambda action: catalog(lang).get(f"export.event.{action}", action),
    )

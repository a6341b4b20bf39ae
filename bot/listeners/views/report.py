"""Submission of the report modal: a new case, or a new version after a change request."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack
from sqlalchemy.exc import IntegrityError

from bot import views, workflow
from bot.i18n import t
from bot.listeners.payload import metadata, state_value, team_id, text_value, user_id
from bot.types import utcnow

if TYPE_CHECKING:
    from bot.app import Runtime

log = logging.getLogger(__name__)

# Whether the chosen manager is a bot or deactivated: a recent answer is enough, and one
# users.info per submission would push the answer past Slack's 3 s under load.
MANAGER_CHECK_MAX_AGE = timedelta(minutes=10)


def parse(view: dict[str, Any]) -> workflow.ReportInput:
    return workflow.ReportInput(
        client=text_value(view, "client"),
        severity=str(state_value(view, "severity") or ""),
        noticed_at=state_value(view, "noticed_at"),
        timeline=text_value(view, "timeline"),
        client_situation=text_value(view, "client_situation"),
        countermeasure=text_value(view, "countermeasure"),
        manager_id=str(state_value(view, "manager") or ""),
        next_contact=state_value(view, "next_contact"),
    )


def handler(runtime: Runtime) -> Callable[..., None]:
    def handle_report(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        reporter = user_id(body)
        locale = runtime.profiles.get(reporter).locale
        meta = metadata(view)
        editing = meta.get("incident")
        data = parse(view)
        now = utcnow()
        manager = None
        if data.manager_id and data.manager_id != reporter:
            p = runtime.profiles.get(data.manager_id, max_age=MANAGER_CHECK_MAX_AGE)
            manager = workflow.ManagerFacts(p.user_id, p.found, p.is_bot, p.deleted)
        errors = workflow.validate_report(
            data,
            reporter,
            manager,
            now,
            needs_contact=editing is None,
            blame_policy=runtime.settings.blame_policy,
        )
        if errors:
            ack(
                response_action="errors",
                errors={b: t(locale, key, **params) for b, (key, params) in errors.items()},
            )
            return
        submit_key = f"{view.get('id')}:{view.get('hash', '')}"[:64]
        try:
            outcome = _store(runtime, reporter, team_id(body), locale, data, editing, submit_key)
        except workflow.Refused as refused:
            ack(
                response_action="errors",
                errors={"client": t(locale, refused.key, **refused.params)},
            )
            return
        ack()
        views.remember_last_manager(reporter, data.manager_id)
        runtime.deliveries.dispatch(outcome.due())

    return handle_report


def _store(
    runtime: Runtime,
    reporter: str,
    team: str,
    locale: str,
    data: workflow.ReportInput,
    editing: Any,
    submit_key: str,
) -> workflow.Outcome:
    """One transaction; a lost race for the next case number is simply tried again."""
    incident_id: int | None = None
    if editing is not None:
        try:
            incident_id = int(editing)
        except (TypeError, ValueError):
            raise workflow.Refused("refused.no_case") from None
    seq = None
    if incident_id is None:
        with runtime.db.session() as s:  # a moment's lock on the counter row, then commit
            seq = workflow.next_case_number(s, team)
    for attempt in range(5):
        try:
            with runtime.db.session() as s:
                if incident_id is not None:
                    return workflow.resubmit_report(
                        s,
                        incident_id=incident_id,
                        actor=reporter,
                        data=data,
                        submit_key=submit_key,
                        now=utcnow(),
                        timings=workflow.Timings.from_settings(runtime.settings),
                    )
                return workflow.submit_report(
                    s,
                    seq=seq,
                    team_id=team,
                    reporter_id=reporter,
                    data=data,
                    locale=locale,
                    submit_key=submit_key,
                    now=utcnow(),
                    timings=workflow.Timings.from_settings(runtime.settings),
                )
        except IntegrityError:
            if attempt == 4:
                raise
            log.info("retrying a report submission after a concurrent insert")
    raise AssertionError("unreachable")

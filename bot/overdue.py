"""The periodic check that turns pending promises past their due time into *missed* ones.

Renderers only read, so the state change happens here, in the workflow verb
`mark_overdue`, on this process's in-memory scheduler, as often as the delivery sweep.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bot import workflow
from bot.types import utcnow

if TYPE_CHECKING:
    from bot.app import Runtime

log = logging.getLogger(__name__)


def check_overdue(runtime: Runtime) -> int:
    """Mark overdue promises missed; dispatch the message refreshes this causes."""
    with runtime.db.session() as s:
        deliveries = workflow.mark_overdue(s, utcnow())
        due = [(d.id, d.fire_at) for d in deliveries]
    runtime.deliveries.dispatch(due, wait=False)
    return len(due)


def _safe_check(runtime: Runtime) -> None:
    try:
        check_overdue(runtime)
    except Exception:
        log.exception("overdue promise check failed")


def start_overdue_check(runtime: Runtime) -> None:
    scheduler = runtime.deliveries.scheduler
    if scheduler is None:
        return
    scheduler.add_job(
        _safe_check,
        "interval",
        seconds=runtime.settings.delivery_sweep_seconds,
        args=[runtime],
        id="overdue-promises",
        next_run_time=utcnow(),
        coalesce=True,
        max_instances=1,
    )

"""Builders for modals (the data each template needs, in the viewer's language and zone)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.ids import Callback
from bot.models import Severity, UserSetting
from bot.profiles import Profile
from bot.render import Renderer
from bot.types import utcnow

if TYPE_CHECKING:
    from bot.app import Runtime

MAX_TEXT = 3000
DEFAULT_CONTACT_DELAY = timedelta(minutes=30)


def last_manager(runtime: Runtime, user_id: str) -> str | None:
    with runtime.db.read() as s:
        row = s.get(UserSetting, user_id)
        return row.default_manager_id if row else None


def report_modal(
    runtime: Runtime,
    profile: Profile,
    *,
    client_name: str = "",
    private_metadata: str = "",
    prefill: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The report modal, new (`prefill` None) or editing a version (prefilled, no promise)."""
    now = (now or utcnow()).replace(second=0, microsecond=0)
    prefill = prefill or {}
    r = Renderer(profile.locale, profile.tz)
    return r.blocks(
        "report_modal",
        callback_id=Callback.REPORT,
        private_metadata=private_metadata,
        title_key="modal.title.edit" if prefill else "modal.title.new",
        is_edit=bool(prefill),
        client=(prefill.get("client") or client_name)[:200],
        severity=prefill.get("severity"),
        severities=[s.value for s in Severity],
        noticed_at=prefill.get("noticed_at") or now,
        timeline=prefill.get("timeline", ""),
        client_situation=prefill.get("client_situation", ""),
        countermeasure=prefill.get("countermeasure", ""),
        manager=prefill.get("manager") or last_manager(runtime, profile.user_id),
        next_contact=now + DEFAULT_CONTACT_DELAY,
        max_text=MAX_TEXT,
    )


def promise_modal(
    profile: Profile,
    *,
    callback_id: str,
    mode: str,
    private_metadata: str,
    case: Any = None,
    cases: list[Any] | None = None,
    current: datetime | None = None,
    initial: datetime | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The small promise modal: `mode` add / next / move; `cases` lets the reporter pick one."""
    from bot.ids import Block

    now = (now or utcnow()).replace(second=0, microsecond=0)
    return Renderer(profile.locale, profile.tz).blocks(
        "promise_modal",
        callback_id=callback_id,
        private_metadata=private_metadata,
        mode=mode,
        case=case,
        cases=cases or [],
        current=current,
        initial=initial or now + DEFAULT_CONTACT_DELAY,
        case_block=Block.PROMISE_CASE,
        due_block=Block.PROMISE_DUE,
    )

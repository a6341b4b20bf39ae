"""Builders for modals (the data each template needs, in the viewer's language and zone)."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from bot.ids import Callback
from bot.models import Severity, UserSetting
from bot.profiles import Profile
from bot.render import Renderer
from bot.types import utcnow

if TYPE_CHECKING:
    from bot.app import Runtime

MAX_TEXT = 3000
DEFAULT_CONTACT_DELAY = timedelta(minutes=30)


# The last chosen manager is only the modal's prefill, read on /mistake's hot path, where a
# database read per request measurably slows a burst's acks (bench/ack_latency.py). It is
# kept for LAST_MANAGER_TTL seconds; this process refreshes it whenever it stores a report,
# so only a report filed through another replica within that window can show an older one.
LAST_MANAGER_TTL = 60.0
_last_managers: dict[str, tuple[float, str | None]] = {}
_last_managers_lock = threading.Lock()


def remember_last_manager(user_id: str, manager_id: str | None) -> None:
    with _last_managers_lock:
        _last_managers[user_id] = (time.monotonic(), manager_id)


def last_manager(runtime: Runtime, user_id: str) -> str | None:
    """The manager this user chose last time."""
    with _last_managers_lock:
        hit = _last_managers.get(user_id)
    if hit is not None and time.monotonic() - hit[0] < LAST_MANAGER_TTL:
        return hit[1]
    query = select(UserSetting.default_manager_id).where(UserSetting.user_id == user_id)
    with runtime.db.read_engine.connect() as conn:
        manager = conn.execute(query).scalar()
    remember_last_manager(user_id, manager)
    return manager


_NEW_MODAL_CACHE: dict[tuple[str, str | None, datetime], str] = {}
_NEW_MODAL_CACHE_LOCK = threading.Lock()


def _new_report_modal(profile: Profile, now: datetime) -> dict[str, Any]:
    """The empty new-report modal for a language, time zone and minute, rendered once.

    A burst of `/mistake` commands renders the same modal again and again; on two cores the
    template work of fifty requests at once competes with their acks for the interpreter, so
    the rendered JSON is kept per minute and only the per-user values are filled in.
    """
    key = (profile.locale, profile.tz, now)
    with _NEW_MODAL_CACHE_LOCK:
        cached = _NEW_MODAL_CACHE.get(key)
    if cached is None:
        view = Renderer(profile.locale, profile.tz).blocks(
            "report_modal",
            callback_id=Callback.REPORT,
            private_metadata="",
            title_key="modal.title.new",
            is_edit=False,
            client="",
            severity=None,
            severities=[s.value for s in Severity],
            noticed_at=now,
            timeline="",
            client_situation="",
            countermeasure="",
            manager=None,
            next_contact=now + DEFAULT_CONTACT_DELAY,
            max_text=MAX_TEXT,
        )
        cached = json.dumps(view, ensure_ascii=False)
        with _NEW_MODAL_CACHE_LOCK:
            if len(_NEW_MODAL_CACHE) > 256:  # old minutes are never asked for again
                _NEW_MODAL_CACHE.clear()
            _NEW_MODAL_CACHE[key] = cached
    return json.loads(cached)


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
    if not prefill:
        view = _new_report_modal(profile, now)
        view["private_metadata"] = private_metadata
        blocks = {b.get("block_id"): b for b in view["blocks"]}
        if client_name:
            blocks["client"]["element"]["initial_value"] = client_name[:200]
        manager = last_manager(runtime, profile.user_id)
        if manager:
            blocks["manager"]["element"]["initial_user"] = manager
        return view
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

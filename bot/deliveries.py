"""Deliveries: every message the bot owes someone, sent exactly once (DESIGN §3).

A delivery row is written in the same transaction as the decision that causes it. Sending is
three steps: *claim* the row with one conditional UPDATE (so two threads, two processes or two
replicas can race for it and only one wins), render and send it outside any transaction, then
record the outcome. A failed send goes back to `pending` with backoff; a claim whose process
died is reset after its lease. APScheduler runs in memory in every process: precise date jobs
for rows this process knows about and a short periodic sweep for everything else.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.config import Settings
from bot.db import Database
from bot.i18n import t
from bot.models import Delivery, DeliveryStatus, Incident, SlackMessage, UserSetting
from bot.profiles import Profiles
from bot.types import utcnow

log = logging.getLogger(__name__)

LATE_GRACE = timedelta(seconds=30)
PERMANENT_ERRORS = frozenset(
    {
        "account_inactive",
        "cannot_dm_bot",
        "channel_not_found",
        "invalid_auth",
        "invalid_blocks",
        "is_archived",
        "message_not_found",
        "msg_too_long",
        "no_text",
        "not_authed",
        "not_in_channel",
        "user_disabled",
        "user_not_found",
        "too_many_attachments",
    }
)


class RetryLater(Exception):
    """A renderer cannot render yet (e.g. the message it updates is still being sent)."""


@dataclass
class Outgoing:
    """What a delivery turns into when it is sent."""

    text: str
    blocks: list[dict[str, Any]] | None = None
    purpose: str | None = None  # remember (channel, ts) in slack_messages under this name
    update: tuple[str, str] | None = None  # (channel, ts): edit that message instead of posting
    file: FileUpload | None = None  # upload this file into the DM instead (text = its comment)
    # Called in the transaction that records the send, with (session, channel, ts or file id).
    on_sent: Callable[[Session, str, str], None] | None = None


@dataclass(frozen=True)
class FileUpload:
    """A file to upload with files_upload_v2 (letters, memoranda, case exports)."""

    filename: str
    title: str
    content: str


@dataclass
class RenderContext:
    """What a kind's renderer may use besides the database session."""

    profiles: Profiles
    settings: Settings
    now: datetime
    extra: dict[str, Any] = field(default_factory=dict)


Render = Callable[[Session, Delivery, RenderContext], Outgoing | None]
KINDS: dict[str, Render] = {}


def kind(name: str) -> Callable[[Render], Render]:
    """Register the renderer of a delivery kind (returning None cancels the delivery)."""

    def register(fn: Render) -> Render:
        KINDS[name] = fn
        return fn

    return register


def new_delivery(
    kind_name: str,
    recipient: str,
    *,
    fire_at: datetime,
    incident_id: int | None = None,
    promise_id: int | None = None,
    report_version: int | None = None,
    dedupe_key: str | None = None,
    data: dict[str, Any] | None = None,
    notify_on_failure: str | None = None,
) -> Delivery:
    """Build a pending delivery row; the caller adds it in the transaction of its decision."""
    if kind_name not in KINDS:
        raise ValueError(f"unknown delivery kind {kind_name!r}")
    return Delivery(
        kind=kind_name,
        recipient=recipient,
        fire_at=fire_at,
        incident_id=incident_id,
        promise_id=promise_id,
        report_version=report_version,
        dedupe_key=dedupe_key,
        data=data or {},
        status=DeliveryStatus.PENDING,
        attempts=0,
        notify_on_failure=notify_on_failure,
        created_at=utcnow(),
    )


def backoff_seconds(attempts: int, cap: float) -> float:
    """Exponential backoff: 1, 2, 4, … seconds, capped."""
    return float(min(cap, 2 ** max(0, attempts - 1)))


class DeliveryService:
    """Claims, renders and sends deliveries; owns the in-memory scheduler of this process."""

    def __init__(
        self,
        db: Database,
        client: WebClient,
        profiles: Profiles,
        settings: Settings,
        worker_id: str | None = None,
        send_threads: int = 8,
    ) -> None:
        self.db = db
        self.client = client
        self.profiles = profiles
        self.settings = settings
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.lease = timedelta(seconds=settings.delivery_lease_seconds)
        self._pool = ThreadPoolExecutor(max_workers=send_threads, thread_name_prefix="delivery")
        self._scheduled: set[int] = set()
        self._scheduled_lock = threading.Lock()
        self.scheduler: BackgroundScheduler | None = None

    # -- claiming -------------------------------------------------------------------------

    def claim(self, delivery_id: int, now: datetime | None = None) -> bool:
        """Take the row for this process: one atomic conditional UPDATE, so only one wins."""
        now = now or utcnow()
        with self.db.session() as s:
            row = s.execute(
                update(Delivery)
                .where(
                    Delivery.id == delivery_id,
                    Delivery.status == DeliveryStatus.PENDING,
                    Delivery.fire_at <= now,
                )
                .values(
                    status=DeliveryStatus.SENDING,
                    claimed_by=self.worker_id,
                    claimed_at=now,
                    attempts=Delivery.attempts + 1,
                )
                .returning(Delivery.id, Delivery.fire_at)
            ).first()
            if row is None:
                return False
            if now - row.fire_at > LATE_GRACE:
                s.execute(update(Delivery).where(Delivery.id == delivery_id).values(late=True))
            return True

    def reset_expired_leases(self, now: datetime | None = None) -> int:
        """Return `sending` rows whose claimer vanished to `pending` (may cause one duplicate)."""
        now = now or utcnow()
        with self.db.session() as s:
            result = s.execute(
                update(Delivery)
                .where(
                    Delivery.status == DeliveryStatus.SENDING,
                    Delivery.claimed_at < now - self.lease,
                )
                .values(status=DeliveryStatus.PENDING, duplicate_risk=True, claimed_by=None)
            )
            count = result.rowcount or 0
        if count:
            log.warning("reset %d delivery claim(s) whose lease expired", count)
        return count

    # -- sending --------------------------------------------------------------------------

    def deliver(self, delivery_id: int) -> str:
        """Claim, render, send and record one delivery. Returns its status afterwards."""
        with self._scheduled_lock:
            self._scheduled.discard(delivery_id)
        now = utcnow()
        if not self.claim(delivery_id, now):
            return "not-claimed"
        try:
            outgoing, recipient, delivery = self._render(delivery_id, now)
        except RetryLater as exc:  # expected, e.g. an update racing its original message
            log.info("delivery %s: %s; retrying shortly", delivery_id, exc)
            return self._failed_attempt(delivery_id, f"retry: {exc}", permanent=False)
        except Exception as exc:
            log.exception("rendering delivery %s failed", delivery_id)
            return self._failed_attempt(delivery_id, f"render error: {exc!r}", permanent=False)
        if outgoing is None:
            self._finish(delivery_id, DeliveryStatus.CANCELLED, error="nothing to send")
            return DeliveryStatus.CANCELLED
        try:
            channel, ts = self._send(recipient, outgoing, delivery_id)
        except SlackApiError as exc:
            error = (exc.response.get("error") if exc.response is not None else None) or "error"
            status = exc.response.status_code if exc.response is not None else 0
            retry_after = None
            if exc.response is not None and status == 429:
                retry_after = float(exc.response.headers.get("Retry-After", 1) or 1)
            log.warning("delivery %s: Slack answered %s %s", delivery_id, status, error)
            return self._failed_attempt(
                delivery_id,
                f"slack {status} {error}",
                permanent=error in PERMANENT_ERRORS,
                retry_after=retry_after,
            )
        except Exception as exc:  # connection errors and the like: retry later
            log.warning("delivery %s: send failed: %r", delivery_id, exc)
            return self._failed_attempt(delivery_id, f"send error: {exc!r}", permanent=False)
        self._record_sent(delivery_id, delivery, outgoing, channel, ts)
        return DeliveryStatus.SENT

    def _render(self, delivery_id: int, now: datetime) -> tuple[Outgoing | None, str, Delivery]:
        # Load the recipient's profile first: Profiles may write it in a session of its own.
        # Rendering only reads, so it runs in a read session (no SQLite write lock), which a
        # renderer's own profile look-ups cannot deadlock against.
        with self.db.read() as s:
            recipient = s.scalar(select(Delivery.recipient).where(Delivery.id == delivery_id))
        if recipient is not None:
            self.profiles.get(recipient)
        with self.db.read() as s:
            delivery = s.get(Delivery, delivery_id)
            assert delivery is not None
            if delivery.report_version is not None and delivery.incident_id is not None:
                incident = s.get(Incident, delivery.incident_id)
                if incident is not None and incident.current_version != delivery.report_version:
                    return None, delivery.recipient, delivery  # superseded: never stale text
            render = KINDS.get(delivery.kind)
            if render is None:
                raise LookupError(f"no renderer for kind {delivery.kind!r}")
            ctx = RenderContext(self.profiles, self.settings, now)
            outgoing = render(s, delivery, ctx)
            s.expunge(delivery)
            return outgoing, delivery.recipient, delivery

    def dm_channel(self, user_id: str) -> str:
        """The bot's DM channel with a user (cached: conversations.open once per user)."""
        with self.db.session() as s:
            row = s.get(UserSetting, user_id)
            if row is not None and row.dm_channel:
                return row.dm_channel
        channel = self.client.conversations_open(users=user_id)["channel"]["id"]
        with self.db.session() as s:
            row = s.get(UserSetting, user_id)
            if row is None:
                s.add(UserSetting(user_id=user_id, dm_channel=channel, updated_at=utcnow()))
            else:
                row.dm_channel = channel
        return channel

    def _send(self, recipient: str, out: Outgoing, delivery_id: int) -> tuple[str, str]:
        metadata = {"event_type": "horenso_delivery", "event_payload": {"delivery_id": delivery_id}}
        if out.update is not None:
            channel, ts = out.update
            self.client.chat_update(
                channel=channel, ts=ts, text=out.text, blocks=out.blocks, metadata=metadata
            )
            return channel, ts
        channel = self.dm_channel(recipient)
        if out.file is not None:  # files.getUploadURLExternal, upload, completeUploadExternal
            resp = self.client.files_upload_v2(
                channel=channel,
                content=out.file.content,
                filename=out.file.filename,
                title=out.file.title,
                initial_comment=out.text,
            )
            return channel, str(resp["file"]["id"])
        resp = self.client.chat_postMessage(
            channel=channel,
            text=out.text,
            blocks=out.blocks,
            metadata=metadata,
            unfurl_links=False,
            unfurl_media=False,
        )
        return resp["channel"], resp["ts"]

    def _record_sent(
        self, delivery_id: int, delivery: Delivery, out: Outgoing, channel: str, ts: str
    ) -> None:
        with self.db.session() as s:
            s.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id, Delivery.status == DeliveryStatus.SENDING)
                .values(
                    status=DeliveryStatus.SENT,
                    sent_at=utcnow(),
                    slack_channel=channel,
                    slack_ts=ts,
                    last_error=None,
                )
            )
            if out.on_sent is not None:
                out.on_sent(s, channel, ts)
            if out.purpose and delivery.incident_id is not None and out.update is None:
                version = delivery.report_version or 0
                existing = s.scalar(
                    select(SlackMessage).where(
                        SlackMessage.incident_id == delivery.incident_id,
                        SlackMessage.purpose == out.purpose,
                        SlackMessage.version == version,
                        SlackMessage.recipient == delivery.recipient,
                    )
                )
                if existing is None:
                    s.add(
                        SlackMessage(
                            incident_id=delivery.incident_id,
                            purpose=out.purpose,
                            version=version,
                            recipient=delivery.recipient,
                            channel=channel,
                            ts=ts,
                            created_at=utcnow(),
                        )
                    )
                else:
                    existing.channel, existing.ts = channel, ts

    def _finish(self, delivery_id: int, status: str, error: str | None = None) -> None:
        with self.db.session() as s:
            s.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id, Delivery.status == DeliveryStatus.SENDING)
                .values(status=status, last_error=error)
            )

    def _failed_attempt(
        self,
        delivery_id: int,
        error: str,
        *,
        permanent: bool,
        retry_after: float | None = None,
    ) -> str:
        with self.db.session() as s:
            delivery = s.get(Delivery, delivery_id)
            assert delivery is not None
            if delivery.status != DeliveryStatus.SENDING:
                return str(delivery.status)
            delivery.last_error = error[:1000]
            if permanent or delivery.attempts >= self.settings.delivery_max_attempts:
                delivery.status = DeliveryStatus.FAILED
                notify = delivery.notify_on_failure
                kind_name, case_id = delivery.kind, delivery.incident_id
            else:
                delay = backoff_seconds(
                    delivery.attempts, self.settings.delivery_backoff_cap_seconds
                )
                if retry_after is not None:
                    delay = max(delay, retry_after)
                delivery.status = DeliveryStatus.PENDING
                delivery.fire_at = utcnow() + timedelta(seconds=delay)
                delivery.claimed_by = None
                fire_at = delivery.fire_at
                notify = None
        if notify is None and delivery.status == DeliveryStatus.PENDING:
            self.schedule(delivery_id, fire_at)
            return DeliveryStatus.PENDING
        log.error("delivery %s failed for good: %s", delivery_id, error)
        if notify:
            self._tell_failure(notify, kind_name, case_id)
        return DeliveryStatus.FAILED

    def _tell_failure(self, user_id: str, kind_name: str, case_id: int | None) -> None:
        """Best effort: tell the person who acted that a message could not be delivered."""
        try:
            short = "-"
            if case_id is not None:
                with self.db.session() as s:
                    incident = s.get(Incident, case_id)
                    short = incident.short_id if incident else "-"
            locale = self.profiles.get(user_id).locale
            text = t(locale, "delivery.failed", case=short, kind=t(locale, f"kind.{kind_name}"))
            self.client.chat_postMessage(channel=self.dm_channel(user_id), text=text)
        except Exception:
            log.warning("could not tell %s about a failed delivery", user_id, exc_info=True)

    # -- scheduling -----------------------------------------------------------------------

    def dispatch(self, delivery_ids: Iterable[tuple[int, datetime]], wait: bool = True) -> None:
        """Send due rows now (in this thread when `wait`), schedule the others precisely."""
        now = utcnow()
        for delivery_id, fire_at in delivery_ids:
            if fire_at <= now:
                if wait:
                    # The decision is stored; a failure here is the sweep's to retry, not an
                    # error to show the person who acted.
                    self._safe_deliver(delivery_id)
                else:
                    self._pool.submit(self._safe_deliver, delivery_id)
            else:
                self.schedule(delivery_id, fire_at)

    def _safe_deliver(self, delivery_id: int) -> None:
        try:
            self.deliver(delivery_id)
        except Exception:
            log.exception("delivery %s crashed", delivery_id)

    def schedule(self, delivery_id: int, fire_at: datetime) -> None:
        """A precise in-memory date job; the sweep is the safety net if this process dies."""
        if self.scheduler is None or not self.scheduler.running:
            return
        with self._scheduled_lock:
            if delivery_id in self._scheduled:
                return
            self._scheduled.add(delivery_id)
        self.scheduler.add_job(
            self._safe_deliver,
            "date",
            run_date=max(fire_at, utcnow()),
            args=[delivery_id],
            id=f"delivery-{delivery_id}",
            replace_existing=True,
            misfire_grace_time=None,
            max_instances=3,  # a retry may be scheduled while its failed attempt still runs
        )

    def sweep(self, now: datetime | None = None, batch: int = 500) -> int:
        """Reset expired leases, send what is due, pre-schedule what falls due soon."""
        now = now or utcnow()
        self.reset_expired_leases(now)
        horizon = now + timedelta(seconds=2 * self.settings.delivery_sweep_seconds)
        with self.db.session() as s:
            rows = s.execute(
                select(Delivery.id, Delivery.fire_at)
                .where(Delivery.status == DeliveryStatus.PENDING, Delivery.fire_at <= horizon)
                .order_by(Delivery.fire_at)
                .limit(batch)
            ).all()
        due = [r.id for r in rows if r.fire_at <= now]
        for r in rows:
            if r.fire_at > now:
                self.schedule(r.id, r.fire_at)
        for delivery_id in due:
            self._pool.submit(self._safe_deliver, delivery_id)
        return len(due)

    def _safe_sweep(self) -> None:
        try:
            self.sweep()
        except Exception:
            log.exception("delivery sweep failed")

    def start(self) -> None:
        """Start this process's scheduler: the periodic sweep, first run right away."""
        self.scheduler = BackgroundScheduler(
            timezone="UTC",
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self.scheduler.add_job(
            self._safe_sweep,
            "interval",
            seconds=self.settings.delivery_sweep_seconds,
            id="delivery-sweep",
            next_run_time=utcnow(),
        )
        self.scheduler.start()

    def shutdown(self) -> None:
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        self._pool.shutdown(wait=True, cancel_futures=True)

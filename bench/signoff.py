"""Report and sign-off benchmark: 200 cases filed and approved through the running bot.

    .venv/bin/python bench/signoff.py                      # SQLite, Slack latency 0 and 0.1 s
    .venv/bin/python bench/signoff.py --postgres           # a fresh PostgreSQL database
    .venv/bin/python bench/signoff.py --database-url URL   # an existing database (kept)
    .venv/bin/python bench/signoff.py --latency 0.1 --users 20 --cases 10

For each simulated Slack latency (the fake answers every Web API call that much later) the
bench starts a fake Slack and the real bot (`python -m bot serve`, HTTP mode; on SQLite a fresh
database file per phase), registers 20 reporters and 20 managers (distinct users, mixed ja/en
locales and time zones), then runs one thread per reporter. Each thread files its cases one
after the other through signed `horenso_report` view submissions (case k of reporter i goes to
manager (i + k) mod 20) and, as soon as the fake records the manager's DM, clicks Approve as
that manager with the button value from the DM's blocks. It does not wait for the decision
notice before filing its next case. One warm-up case per phase is not counted.

Measured (monotonic clock of this process; the fake stamps a call when it processes it, i.e.
after its simulated latency):

* submission → manager DM: from sending the view submission to the fake recording the
  chat.postMessage to D<manager> that carries this case (found by a unique tag in the client
  name; the case id comes from the Approve button value),
* approval → reporter notice: from sending the Approve click to the fake recording the
  chat.postMessage to D<reporter> that says the case was approved,
* throughput: cases from the first submission to the last decision notice,
* lost: per case, a manager DM, a reporter receipt, a decision notice, an in-place update of
  the manager DM (no buttons left, approved) and a receipt showing the approval; any of these
  missing after the settle timeout is lost,
* duplicated: a delivery_id (metadata.event_payload.delivery_id) posted or updated more than
  once, more than one manager DM / receipt / notice per case, a bot message without a
  delivery_id.

Both lost and duplicated must be 0; the exit status is 1 otherwise (or on bot log errors).
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import func, make_url, select  # noqa: E402

from bot.config import normalise_database_url  # noqa: E402
from bot.db import Database  # noqa: E402
from bot.models import Decision, Delivery, Incident  # noqa: E402
from tests.harness.botprocess import BOT_TOKEN, SIGNING_SECRET, BotProcess  # noqa: E402
from tests.harness.fakeslack import Call, FakeSlack  # noqa: E402
from tests.harness.flows import buttons, report_values  # noqa: E402
from tests.harness.slackrequests import Response, SlackRequests  # noqa: E402

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/horenso_bench_signoff"
TAG_RE = re.compile(r"BENCH[0-9A-F]{6}-W?\d{2}-\d{2}")
SHORT_RE = re.compile(r"^([A-Z][A-Z0-9]*-\d+)(?![0-9])")
APPROVED_MARK = ":white_check_mark:"
PROFILES = [  # (locale, tz, tz_offset)
    ("ja-JP", "Asia/Tokyo", 32400),
    ("en-US", "America/New_York", -18000),
    ("en-GB", "Europe/London", 0),
    ("ja-JP", "America/Los_Angeles", -28800),
    ("en-US", "Europe/Berlin", 3600),
    ("ja-JP", "UTC", 0),
]
T = TypeVar("T")


# ---------------------------------------------------------------------------- recording


def _delivery_id(call: Call) -> Any:
    meta = call.params.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("event_payload"), dict):
        return meta["event_payload"].get("delivery_id")
    return None


def _blocks(call: Call) -> list[dict[str, Any]]:
    blocks = call.params.get("blocks")
    return [b for b in blocks if isinstance(b, dict)] if isinstance(blocks, list) else []


def _text(call: Call) -> str:
    text = call.params.get("text")
    return text if isinstance(text, str) else ""


class Tracker:
    """Follows fake.calls from one background thread and indexes the bot's messages.

    One reader instead of 20 threads each scanning the whole call list keeps this process
    (which also serves the fake Slack) from competing with itself for the GIL.
    """

    def __init__(self, fake: FakeSlack) -> None:
        self.fake = fake
        self.cond = threading.Condition()
        self._pos = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tracker", daemon=True)
        self.methods: Counter[str] = Counter()
        self.not_ok: list[Call] = []
        self.manager_dms: dict[str | None, list[Call]] = {}  # by case tag
        self.receipts: dict[int, list[Call]] = {}  # by incident id
        self.notices: dict[tuple[str, str], list[Call]] = {}  # by (reporter, short id)
        self.updates: dict[tuple[str, str], list[Call]] = {}  # by (channel, ts)
        self.by_delivery: dict[tuple[str, Any], list[Call]] = {}  # by (method, delivery_id)
        self.unclassified: list[Call] = []

    def start(self) -> Tracker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.poll()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            time.sleep(0.002)

    def poll(self) -> None:
        calls = self.fake.calls
        end = len(calls)
        if end <= self._pos:
            return
        new, self._pos = calls[self._pos : end], end
        with self.cond:
            for call in new:
                self._classify(call)
            self.cond.notify_all()

    def _classify(self, call: Call) -> None:
        self.methods[call.method] += 1
        if not call.ok:
            self.not_ok.append(call)
            return
        if call.method not in ("chat.postMessage", "chat.update"):
            return
        self.by_delivery.setdefault((call.method, _delivery_id(call)), []).append(call)
        if call.method == "chat.update":
            key = (str(call.response.get("channel")), str(call.params.get("ts")))
            self.updates.setdefault(key, []).append(call)
            return
        acts = buttons(_blocks(call))
        text = _text(call)
        if "approve" in acts:
            found = TAG_RE.search(text) or TAG_RE.search(json.dumps(_blocks(call)))
            self.manager_dms.setdefault(found.group(0) if found else None, []).append(call)
            return
        if "withdraw" in acts:
            with suppress(ValueError, KeyError, AttributeError):
                iid = int(str(acts["withdraw"]["value"]).split(":")[0])
                self.receipts.setdefault(iid, []).append(call)
                return
        short = SHORT_RE.match(text)
        channel = str(call.response.get("channel", ""))
        if short and ("approved" in text or "承認" in text):
            self.notices.setdefault((channel[1:], short.group(1)), []).append(call)
            return
        self.unclassified.append(call)

    def wait(self, probe: Callable[[], T | None], timeout: float) -> T | None:
        """Wait (bounded) until `probe()`, run under the tracker's lock, returns a value."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                found = probe()
                if found is not None:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self.cond.wait(min(remaining, 0.25))


# ---------------------------------------------------------------------------- one case


@dataclass
class Case:
    tag: str
    reporter: str
    manager: str
    warmup: bool = False
    submit_sent: float = 0.0
    submit_ack: float | None = None
    submit_error: str = ""
    dm: Call | None = None
    incident_id: int | None = None
    short_id: str | None = None
    click_sent: float | None = None
    click_ack: float | None = None
    click_error: str = ""
    notice: Call | None = None

    @property
    def dm_latency(self) -> float | None:
        return None if self.dm is None else self.dm.at - self.submit_sent

    @property
    def notice_latency(self) -> float | None:
        if self.notice is None or self.click_sent is None:
            return None
        return self.notice.at - self.click_sent


def _ack_problem(resp: Response) -> str:
    if resp.status != 200:
        return f"HTTP {resp.status}: {resp.body[:200]}"
    body = resp.json
    if isinstance(body, dict) and body.get("response_action") == "errors":
        return f"validation errors: {body.get('errors')}"
    return ""


def run_case(slack: SlackRequests, tracker: Tracker, case: Case, timeout: float) -> None:
    """File one case, wait for the manager's DM, click Approve as the manager."""
    values = report_values(case.manager, client=f"株式会社ベンチ {case.tag}")
    case.submit_sent = time.monotonic()
    try:
        resp = slack.view_submission(
            case.reporter,
            "horenso_report",
            values,
            private_metadata="{}",
            view_id="V" + uuid.uuid4().hex[:10].upper(),
        )
    except OSError as exc:
        case.submit_error = f"request failed: {exc!r}"
        return
    case.submit_ack = resp.elapsed
    case.submit_error = _ack_problem(resp)
    if resp.status == 200 and case.submit_error:
        return  # refused on a field: nothing was filed
    # A failed ack (e.g. Bolt's 404 after 3 s) may still have filed the case: follow it up.
    dm = tracker.wait(lambda: (tracker.manager_dms.get(case.tag) or [None])[0], timeout)
    if dm is None:
        return
    case.dm = dm
    value = str(buttons(_blocks(dm))["approve"].get("value", ""))
    with suppress(ValueError):
        case.incident_id = int(value.split(":")[0])
    short = SHORT_RE.match(_text(dm))
    case.short_id = short.group(1) if short else None
    channel, ts = str(dm.response.get("channel")), str(dm.response.get("ts"))
    case.click_sent = time.monotonic()
    try:
        resp = slack.block_action(
            case.manager,
            "approve",
            value=value,
            block_id="manager_actions",
            container={"type": "message", "channel_id": channel, "message_ts": ts},
            message={"type": "message", "ts": ts, "text": _text(dm), "blocks": _blocks(dm)},
            channel_id=channel,
        )
    except OSError as exc:
        case.click_error = f"request failed: {exc!r}"
        return
    case.click_ack = resp.elapsed
    if resp.status != 200:
        case.click_error = f"HTTP {resp.status}: {resp.body[:200]}"


# ---------------------------------------------------------------------------- accounting


@dataclass
class Accounting:
    lost: Counter[str] = field(default_factory=Counter)
    duplicated: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    stray: int = 0  # bot messages without a delivery_id

    def loss(self, what: str, case: Case) -> None:
        self.lost[what] += 1
        if len(self.examples) < 10:
            self.examples.append(f"lost {what}: {case.tag} {case.short_id or ''}".rstrip())

    def dup(self, what: str, n: int, detail: str) -> None:
        self.duplicated[what] += n
        if len(self.examples) < 10:
            self.examples.append(f"duplicated {what} (+{n}): {detail}")


def _final(fake: FakeSlack, channel: str, ts: str) -> dict[str, Any]:
    return dict(fake.messages.get((channel, ts)) or {})


def _approved_without_buttons(message: dict[str, Any]) -> bool:
    blocks = message.get("blocks") or []
    return not buttons(blocks) and APPROVED_MARK in json.dumps(blocks, ensure_ascii=False)


def complete(fake: FakeSlack, tracker: Tracker, case: Case) -> dict[str, bool]:
    """Which of the messages this case is owed have arrived (call under tracker.cond)."""
    got = {"manager DM": case.dm is not None}
    receipts = tracker.receipts.get(case.incident_id or -1, [])
    got["receipt"] = bool(receipts)
    if case.short_id is not None and case.notice is None:
        found = tracker.notices.get((case.reporter, case.short_id))
        case.notice = found[0] if found else None
    got["decision notice"] = case.notice is not None
    if case.dm is not None:
        key = (str(case.dm.response.get("channel")), str(case.dm.response.get("ts")))
        got["manager DM update"] = bool(tracker.updates.get(key)) and _approved_without_buttons(
            _final(fake, *key)
        )
    if receipts:
        key = (str(receipts[0].response.get("channel")), str(receipts[0].response.get("ts")))
        final = json.dumps(_final(fake, *key).get("blocks") or [], ensure_ascii=False)
        got["receipt shows approval"] = APPROVED_MARK in final
    else:
        got["receipt shows approval"] = False
    return got


def account(fake: FakeSlack, tracker: Tracker, cases: list[Case], extra: set[str]) -> Accounting:
    acc = Accounting()
    mine = {c.tag for c in cases} | extra
    with tracker.cond:
        for case in cases:
            if case.submit_error and case.dm is None:
                acc.loss("case (submission failed, nothing filed)", case)
                continue
            got = complete(fake, tracker, case)
            if case.dm is None:
                acc.loss("manager DM", case)  # nothing else can be matched without it
                continue
            if case.click_error:
                acc.loss("approval (click refused)", case)
                got = {"receipt": got["receipt"]}
            for what, ok in got.items():
                if not ok:
                    acc.loss(what, case)
            for what, calls in (
                ("manager DM", tracker.manager_dms.get(case.tag, [])),
                ("receipt", tracker.receipts.get(case.incident_id or -1, [])),
                ("decision notice", tracker.notices.get((case.reporter, case.short_id or ""), [])),
            ):
                if len(calls) > 1:
                    acc.dup(what, len(calls) - 1, case.tag)
        for (method, did), calls in tracker.by_delivery.items():
            if did is None:
                acc.stray += len(calls)  # not sent by the delivery machinery (e.g. an error DM)
            elif len(calls) > 1:
                acc.dup(f"delivery_id sent twice ({method})", len(calls) - 1, f"delivery {did}")
        strays = [t for t in tracker.manager_dms if t not in mine]
        for tag in strays:
            acc.dup("manager DM for no filed case", len(tracker.manager_dms[tag]), str(tag))
    return acc


def settle(fake: FakeSlack, tracker: Tracker, cases: list[Case], timeout: float) -> float:
    """Wait (bounded) until every filed case has all its messages; return the wait."""
    started = time.monotonic()
    live = [c for c in cases if c.dm is not None and not c.click_error]

    def done() -> bool | None:
        return all(all(complete(fake, tracker, c).values()) for c in live) or None

    tracker.wait(done, timeout)
    return time.monotonic() - started


# ---------------------------------------------------------------------------- reporting


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def dist(values: list[float]) -> str:
    if not values:
        return "no samples"
    ms = [v * 1000 for v in values]
    return (
        f"p50 {pct(ms, 50):7.1f} ms   p99 {pct(ms, 99):7.1f} ms   max {max(ms):7.1f} ms"
        f"   (n={len(ms)})"
    )


def log_problems(text: str) -> tuple[Counter[str], Counter[str]]:
    """Distinct errors (an ERROR line with the exception its traceback ends in) and warnings."""
    errors: Counter[str] = Counter()
    warnings: Counter[str] = Counter()
    lines = text.splitlines()

    def norm(line: str, level: str) -> str:
        line = re.sub(rf"^.*?{level} ", "", line)
        return re.sub(r"\[\d+\]|\b[0-9a-f]{8}\b|\d+", "N", line)[:200]

    for n, line in enumerate(lines):
        if re.search(r"\b(ERROR|CRITICAL)\b", line):
            tail = ""
            if n + 1 < len(lines) and lines[n + 1].startswith("Traceback"):
                tail = next(
                    (x for x in lines[n + 2 :] if x and not x.startswith((" ", "Traceback"))), ""
                )
            level = "ERROR" if "ERROR" in line else "CRITICAL"
            errors[norm(line, level) + (f" -> {tail[:200]}" if tail else "")] += 1
        elif re.search(r"\bWARNING\b", line):
            warnings[norm(line, "WARNING")] += 1
    return errors, warnings


def db_summary(url: str, reporters: list[str]) -> list[str]:
    db = Database(url, pool_size=2)
    try:
        with db.session() as s:
            ids = list(s.scalars(select(Incident.id).where(Incident.reporter_id.in_(reporters))))
            states = Counter(
                s.scalars(select(Incident.state).where(Incident.reporter_id.in_(reporters)))
            )
            decisions = s.scalar(
                select(func.count()).select_from(Decision).where(Decision.incident_id.in_(ids))
            )
            rows = s.execute(
                select(Delivery.kind, Delivery.status, func.count(), func.max(Delivery.attempts))
                .where(Delivery.incident_id.in_(ids))
                .group_by(Delivery.kind, Delivery.status)
                .order_by(Delivery.kind, Delivery.status)
            ).all()
            flagged = s.execute(
                select(Delivery.id, Delivery.kind, Delivery.status, Delivery.last_error).where(
                    Delivery.incident_id.in_(ids),
                    (Delivery.late.is_(True))
                    | (Delivery.duplicate_risk.is_(True))
                    | (Delivery.last_error.is_not(None)),
                )
            ).all()
    finally:
        db.dispose()
    out = [
        f"db: {len(ids)} cases {dict(sorted(states.items()))}, {decisions} decisions",
        "db deliveries: " + ", ".join(f"{k} {st}={n} (max attempts {a})" for k, st, n, a in rows),
    ]
    errors = Counter((k, st, (e or "")[:80]) for _i, k, st, e in flagged)
    for (k, st, e), n in errors.most_common(6):
        out.append(f"db note: {n} x {k} {st}: {e or 'late/duplicate_risk flag'}")
    return out


# ---------------------------------------------------------------------------- a phase


@dataclass
class PhaseResult:
    label: str
    latency: float
    cases: list[Case]
    wall: float
    acc: Accounting
    lines: list[str]
    log_errors: int
    trouble: int  # fake violations, refused requests, hung threads, non-delivery messages

    @property
    def lost(self) -> int:
        return sum(self.acc.lost.values())

    @property
    def duplicated(self) -> int:
        return sum(self.acc.duplicated.values())


def add_users(fake: FakeSlack, run: str, n: int) -> tuple[list[str], list[str]]:
    reporters, managers = [], []
    for i in range(n):
        for role, out, shift in (("R", reporters, 0), ("M", managers, 3)):
            uid = f"U{run}{role}{i:02d}"
            locale, tz, offset = PROFILES[(i + shift) % len(PROFILES)]
            ja = locale.startswith("ja")
            fake.add_user(
                uid,
                name=f"bench-{role.lower()}{i:02d}",
                real_name=f"{'ベンチ' if ja else 'Bench'} {role}{i:02d}",
                tz=tz,
                tz_offset=offset,
                locale=locale,
                title="Manager" if role == "M" else "Sales",
            )
            out.append(uid)
    return reporters, managers


@contextmanager
def running_bot(fake: FakeSlack, url: str) -> Iterator[BotProcess]:
    bot = BotProcess(fake.api_url, url)
    ACTIVE.append(bot)
    try:
        yield bot.start(migrate=True, timeout=60)
    finally:
        bot.stop(timeout=20)
        ACTIVE.remove(bot)


ACTIVE: list[BotProcess] = []


def run_phase(args: argparse.Namespace, url: str, label: str, latency: float) -> PhaseResult:
    run = uuid.uuid4().hex[:6].upper()
    fake = FakeSlack(token=BOT_TOKEN, latency=latency).start()
    tracker = Tracker(fake).start()
    try:
        reporters, managers = add_users(fake, run, args.users)
        warm_r, warm_m = f"U{run}WR", f"U{run}WM"
        fake.add_user(warm_r, locale="ja-JP")
        fake.add_user(warm_m, locale="en-GB", tz="Europe/London", tz_offset=0)
        with running_bot(fake, url) as bot:
            slack = SlackRequests(bot.url, SIGNING_SECRET, fake=fake)
            warm = Case(f"BENCH{run}-W00-00", warm_r, warm_m, warmup=True)
            run_case(slack, tracker, warm, args.timeout)
            if warm.dm is None or warm.submit_error or warm.click_error:
                print(f"warning: warm-up case failed: {warm.submit_error or warm.click_error}")
            cases = [
                Case(f"BENCH{run}-{i:02d}-{k:02d}", reporters[i], managers[(i + k) % args.users])
                for i in range(args.users)
                for k in range(args.cases)
            ]
            per_user = [cases[i * args.cases : (i + 1) * args.cases] for i in range(args.users)]

            def user_thread(mine: list[Case]) -> None:
                for case in mine:
                    run_case(slack, tracker, case, args.timeout)

            start = time.monotonic()
            threads = [
                threading.Thread(target=user_thread, args=(mine,), name=f"user-{i}", daemon=True)
                for i, mine in enumerate(per_user)
            ]
            for t in threads:
                t.start()
            budget = args.cases * (args.timeout + 25) + 30
            for t in threads:
                t.join(max(0.1, start + budget - time.monotonic()))
            hung = sum(t.is_alive() for t in threads)
            waited = settle(fake, tracker, cases, args.settle)
            time.sleep(args.quiet)  # late duplicates would show up here
            tracker.poll()
            acc = account(fake, tracker, cases, {warm.tag})
            last = [c.notice.at for c in cases if c.notice is not None]
            wall = (max(last) if last else time.monotonic()) - start
            bot_log = bot.output()
        lines = report_lines(fake, tracker, cases, acc, wall, waited, hung)
        lines += db_summary(url, [*reporters, warm_r])
        errors, warnings = log_problems(bot_log)
        lines.append(f"bot log: {sum(errors.values())} errors, {sum(warnings.values())} warnings")
        lines += [f"  error x{n}: {e}" for e, n in errors.most_common(8)]
        lines += [f"  warning x{n}: {w}" for w, n in warnings.most_common(6)]
        if errors or warnings:
            kept = Path(tempfile.gettempdir()) / f"horenso-bench-signoff-{run}.log"
            kept.write_text(bot_log)
            lines.append(f"  (full bot log: {kept})")
        if fake.violations:
            lines.append(f"fake Slack violations: {len(fake.violations)}")
            lines += [f"  {v[:240]}" for v in fake.violations[:10]]
        Path(bot.log.name).unlink(missing_ok=True)
        trouble = len(fake.violations) + hung + acc.stray
        trouble += sum(bool(c.submit_error or c.click_error) for c in cases)
        return PhaseResult(
            label, latency, cases, wall, acc, [*lines, ""], sum(errors.values()), trouble
        )
    finally:
        tracker.stop()
        fake.stop()


def report_lines(
    fake: FakeSlack,
    tracker: Tracker,
    cases: list[Case],
    acc: Accounting,
    wall: float,
    waited: float,
    hung: int,
) -> list[str]:
    filed = [c for c in cases if c.dm is not None]
    clicked = [c for c in cases if c.click_sent is not None and not c.click_error]
    notified = [c for c in cases if c.notice is not None]
    submit_acks = [c.submit_ack for c in cases if c.submit_ack is not None]
    click_acks = [c.click_ack for c in cases if c.click_ack is not None]
    lines = [
        f"cases: {len(cases)} submitted, {len(filed)} reached the manager, "
        f"{len(clicked)} approved, {len(notified)} reporters notified"
        + (f"  ({hung} user threads still running!)" if hung else ""),
        "submission -> manager DM:       "
        + dist([c.dm_latency for c in cases if c.dm_latency is not None]),
        "approve click -> reporter notice: "
        + dist([c.notice_latency for c in cases if c.notice_latency is not None]),
        "ack view_submission:            " + dist(submit_acks),
        "ack approve click:              " + dist(click_acks),
        f"throughput: {len(notified) / wall if wall > 0 else 0:.1f} cases/s "
        f"({len(notified)} filed->notified in {wall:.1f} s; settled {waited:.1f} s after the "
        "last click)",
        f"lost messages: {sum(acc.lost.values())}" + (f"  {dict(acc.lost)}" if acc.lost else ""),
        f"duplicated messages: {sum(acc.duplicated.values())}"
        + (f"  {dict(acc.duplicated)}" if acc.duplicated else ""),
    ]
    if acc.stray:
        lines.append(f"bot messages without a delivery_id (not deliveries): {acc.stray}")
    failed_acks = Counter(
        f"{kind} {err.split(':')[0]}"
        for c in cases
        for kind, err in (("view_submission", c.submit_error), ("approve click", c.click_error))
        if err
    )
    lines.append(
        f"failed acks: {sum(failed_acks.values())}"
        + (f"  {dict(failed_acks)}" if failed_acks else "")
    )
    filed_anyway = [c for c in cases if c.submit_error and c.dm is not None]
    if filed_anyway:
        lines.append(
            f"  {len(filed_anyway)} of them were filed and sent to the manager anyway "
            f"(ack took {dist([c.submit_ack or 0 for c in filed_anyway])})"
        )
    for c in [c for c in cases if c.submit_error or c.click_error][:3]:
        lines.append(f"  e.g. {c.tag}: {c.submit_error or c.click_error}")
    lines += [f"  {e}" for e in acc.examples[:10]]
    if tracker.unclassified:
        lines.append(f"unclassified bot messages: {len(tracker.unclassified)}")
        for call in tracker.unclassified[:5]:
            lines.append(f"  {call.response.get('channel')}: {_text(call)[:120]}")
    not_ok = Counter(f"{c.method} {c.status} {c.response.get('error')}" for c in tracker.not_ok)
    calls = ", ".join(f"{m} {n}" for m, n in sorted(tracker.methods.items()))
    lines.append(f"slack calls: {calls}; not ok: {sum(not_ok.values())}")
    for what, n in not_ok.most_common(5):
        lines.append(f"  {n} x {what}")
    return lines


# ---------------------------------------------------------------------------- databases


def _admin_url(url: str) -> tuple[str, str]:
    parsed = make_url(url)
    name = parsed.database or ""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise SystemExit(f"unsupported database name {name!r}")
    admin = parsed.set(drivername="postgresql", database="postgres")
    return admin.render_as_string(hide_password=False), name


def create_database(url: str) -> None:
    import psycopg

    admin, name = _admin_url(url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(url: str) -> None:
    import psycopg

    admin, name = _admin_url(url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--database-url",
        help="run against this existing database (SQLite or PostgreSQL; migrated, not dropped)",
    )
    where.add_argument(
        "--postgres",
        nargs="?",
        const=DEFAULT_POSTGRES,
        metavar="URL",
        help=f"create this PostgreSQL database, run, drop it (default {DEFAULT_POSTGRES})",
    )
    p.add_argument(
        "--latency",
        type=float,
        action="append",
        help="fake Slack latency in seconds; repeat for several phases (default: 0 and 0.1)",
    )
    p.add_argument("--users", type=int, default=20, help="concurrent reporters (and managers)")
    p.add_argument("--cases", type=int, default=10, help="cases per reporter")
    p.add_argument("--timeout", type=float, default=20.0, help="wait for a manager DM, seconds")
    p.add_argument("--settle", type=float, default=30.0, help="wait for the last messages")
    p.add_argument("--quiet", type=float, default=2.0, help="extra wait for late duplicates")
    args = p.parse_args(argv)
    args.latency = args.latency or [0.0, 0.1]
    if args.users < 1 or args.cases < 1:
        p.error("--users and --cases must be >= 1")
    return args


def _terminate(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    results: list[PhaseResult] = []
    tmp = tempfile.TemporaryDirectory(prefix="horenso-bench-signoff-")
    created: str | None = None
    try:
        if args.postgres:
            create_database(args.postgres)
            created = args.postgres
        for n, latency in enumerate(args.latency):
            if args.postgres or args.database_url:
                raw = args.postgres or args.database_url
                url, label = normalise_database_url(raw), make_url(raw).get_backend_name()
            else:
                url, label = f"sqlite:///{Path(tmp.name) / f'signoff-{n}.db'}", "sqlite"
            print(
                f"== sign-off bench: {label}, fake Slack latency {latency:.3f} s, "
                f"{args.users} users x {args.cases} cases ==",
                flush=True,
            )
            result = run_phase(args, url, label, latency)
            results.append(result)
            print("\n".join(result.lines), flush=True)
    finally:
        for bot in list(ACTIVE):
            bot.stop(timeout=10)
        if created:
            with suppress(Exception):
                drop_database(created)
        tmp.cleanup()
    print("== summary ==")
    print(
        f"{'db':<10} {'latency':>8} {'DM p50':>8} {'DM p99':>8} {'note p50':>9} {'note p99':>9}"
        f" {'cases/s':>8} {'lost':>5} {'dup':>5} {'log errors':>10}"
    )
    failed = False
    for r in results:
        dm = [c.dm_latency * 1000 for c in r.cases if c.dm_latency is not None]
        nt = [c.notice_latency * 1000 for c in r.cases if c.notice_latency is not None]
        notified = sum(c.notice is not None for c in r.cases)
        p = [pct(v, q) if v else float("nan") for v in (dm, nt) for q in (50, 99)]
        print(
            f"{r.label:<10} {r.latency:>7.3f}s {p[0]:>8.1f} {p[1]:>8.1f} {p[2]:>9.1f} {p[3]:>9.1f}"
            f" {notified / r.wall if r.wall > 0 else 0:>8.1f} {r.lost:>5} {r.duplicated:>5}"
            f" {r.log_errors:>10}"
        )
        failed |= bool(r.lost or r.duplicated or r.trouble)
    print("(latencies in ms)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

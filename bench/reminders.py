"""Reminder benchmark (issue 4): lateness, duplicates and losses; start-up time and peak RSS.

    .venv/bin/python bench/reminders.py [--pg postgresql://postgres@127.0.0.1:5432/postgres]

1. Lateness: 1,000 promises whose `due` reminders fall due within one minute, inserted in bulk
   (SQL) while the bot runs: one process on SQLite, then three processes sharing one
   PostgreSQL database. Lateness = the fake Slack's record of the chat.postMessage carrying
   the delivery id in its metadata − the row's fire_at. Duplicates (a delivery posted twice)
   and losses (never posted) must be 0.
2. Start-up and memory with 100,000 pending reminders in the database: process start →
   /healthz 200, and the gunicorn worker's peak RSS (VmHWM) after a few sweeps.

Targets: p99 lateness ≤ 1 s, start-up ≤ 3 s, RSS ≤ 200 MB. The PostgreSQL part uses a
dedicated database that it creates and drops (skipped with --no-pg).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, insert, select, text  # noqa: E402

from bot.config import normalise_database_url  # noqa: E402
from bot.db import Database, migrate  # noqa: E402
from bot.models import Delivery, Incident, Promise, UserSetting  # noqa: E402
from bot.types import utcnow  # noqa: E402
from tests.harness.botprocess import BOT_TOKEN, BotProcess  # noqa: E402
from tests.harness.fakeslack import FakeSlack  # noqa: E402

REPORTER = "U0BENCHREP"
MANAGER = "U0BENCHMGR"
PG_DB = "horenso_bench_reminders_h6"
CHUNK = 5000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def seed(url: str, count: int, first_fire: datetime, spread: timedelta) -> list[int]:
    """Bulk-insert `count` cases, each with one pending promise and its `due` reminder."""
    db = Database(url)
    now = utcnow()
    with db.engine.begin() as conn:
        conn.execute(
            insert(UserSetting),
            [
                {"user_id": u, "slack_locale": loc, "tz": "Asia/Tokyo", "real_name": u,
                 "title": "", "is_bot": False, "deleted": False, "profile_fetched_at": now,
                 "updated_at": now, "dm_channel": f"D{u}"}
                for u, loc in ((REPORTER, "ja-JP"), (MANAGER, "en-GB"))
            ],
        )  # fmt: skip
        base = conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM incidents")).scalar_one()
        for start in range(0, count, CHUNK):
            n = range(start, min(count, start + CHUNK))
            step = spread / max(1, count - 1)
            conn.execute(
                insert(Incident),
                [
                    {"id": base + i + 1, "team_id": "T0001", "seq": base + i + 1,
                     "reporter_id": REPORTER, "manager_id": MANAGER, "client": f"取引先 {i}",
                     "severity": "major", "state": "reported", "locale": "ja",
                     "current_version": 1, "will_attend": False, "created_at": now,
                     "updated_at": now}
                    for i in n
                ],
            )  # fmt: skip
            conn.execute(
                insert(Promise),
                [
                    {"id": base + i + 1, "incident_id": base + i + 1, "text": "",
                     "due_at": first_fire + step * i, "status": "pending",
                     "created_by": REPORTER, "created_at": now, "updated_at": now,
                     "kept_late": False, "revision": 0}
                    for i in n
                ],
            )  # fmt: skip
            conn.execute(
                insert(Delivery),
                [
                    {"kind": "due", "incident_id": base + i + 1, "promise_id": base + i + 1,
                     "recipient": REPORTER, "dedupe_key": f"due:{base + i + 1}:0",
                     "data": {"at": (first_fire + step * i).isoformat(), "revision": 0},
                     "fire_at": first_fire + step * i, "status": "pending", "attempts": 0,
                     "late": False, "duplicate_risk": False, "created_at": now}
                    for i in n
                ],
            )  # fmt: skip
        ids = [
            r[0]
            for r in conn.execute(
                text("SELECT id FROM deliveries WHERE kind = 'due' ORDER BY id")
            ).all()
        ]
    db.dispose()
    return ids


def fresh_sqlite(tmp: Path, name: str) -> str:
    url = f"sqlite:///{tmp / name}"
    db = Database(url)
    migrate(db)
    db.dispose()
    return url


def fresh_pg(admin_url: str) -> str:
    admin = create_engine(normalise_database_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{PG_DB}"'))
    admin.dispose()
    url = normalise_database_url(admin_url.rsplit("/", 1)[0] + f"/{PG_DB}")
    db = Database(url)
    migrate(db)
    db.dispose()
    return url


def drop_pg(admin_url: str) -> None:
    admin = create_engine(normalise_database_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)'))
    admin.dispose()


def delivery_id(call: Any) -> int | None:
    meta = call.params.get("metadata")
    if isinstance(meta, dict) and meta.get("event_type") == "horenso_delivery":
        return (meta.get("event_payload") or {}).get("delivery_id")
    return None


def lateness_run(fake: FakeSlack, url: str, processes: int, label: str) -> dict[str, Any]:
    fake.reset()
    bots = [BotProcess(fake.api_url, url, DELIVERY_SWEEP_SECONDS="5") for _ in range(processes)]
    try:
        for b in bots:
            b.start()
        first = utcnow() + timedelta(seconds=12)
        ids = seed(url, 1000, first, timedelta(seconds=60))
        db = Database(url)
        with db.session() as s:
            fire = dict(
                s.execute(select(Delivery.id, Delivery.fire_at).where(Delivery.kind == "due")).all()
            )
        wanted = set(ids)
        deadline = time.monotonic() + 12 + 60 + 30
        seen: dict[int, list[float]] = {}
        while time.monotonic() < deadline:
            seen = {}
            for c in fake.calls_to("chat.postMessage", ok_only=True):
                did = delivery_id(c)
                if did in wanted:
                    seen.setdefault(did, []).append(c.wall)
            if len(seen) == len(wanted):
                break
            time.sleep(0.5)
        time.sleep(2)  # let a late duplicate show up if there were one
        seen = {}
        for c in fake.calls_to("chat.postMessage", ok_only=True):
            did = delivery_id(c)
            if did in wanted:
                seen.setdefault(did, []).append(c.wall)
        db.dispose()
    finally:
        for b in bots:
            b.stop()
    late = []
    for did, walls in seen.items():
        late.append(max(0.0, min(walls) - fire[did].timestamp()))
    duplicates = sum(len(w) - 1 for w in seen.values())
    losses = len(wanted) - len(seen)
    result = {
        "label": label,
        "p50": statistics.median(late) if late else float("nan"),
        "p99": percentile(late, 0.99),
        "max": max(late) if late else float("nan"),
        "duplicates": duplicates,
        "losses": losses,
    }
    print(
        f"lateness  {label:<28} 1000 reminders in 60 s: p50 {result['p50']:.3f} s  "
        f"p99 {result['p99']:.3f} s  max {result['max']:.3f} s  "
        f"duplicates {duplicates}  losses {losses}",
        flush=True,
    )
    return result


def worker_pid(parent: int) -> int | None:
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent:
            return int(proc.name)
    return None


def vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def startup_run(fake: FakeSlack, url: str, label: str) -> dict[str, Any]:
    fake.reset()
    seed(url, 100_000, utcnow() + timedelta(days=1), timedelta(days=7))
    bot = BotProcess(fake.api_url, url, DELIVERY_SWEEP_SECONDS="5")
    started = time.monotonic()
    bot.start(timeout=60)
    startup = time.monotonic() - started
    try:
        time.sleep(11)  # a few sweeps and overdue checks over the 100,000 rows
        with urllib.request.urlopen(bot.url + "/healthz", timeout=5) as resp:
            assert resp.status == 200
        assert bot.proc is not None
        pid = worker_pid(bot.proc.pid)
        rss = vm_hwm_mb(pid) if pid else float("nan")
    finally:
        bot.stop()
    print(
        f"startup   {label:<28} 100,000 pending reminders: start-up {startup:.2f} s  "
        f"peak RSS (worker VmHWM) {rss:.1f} MB",
        flush=True,
    )
    return {"label": label, "startup": startup, "rss": rss}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    fake = FakeSlack(token=BOT_TOKEN).start()
    fake.add_user(REPORTER, tz="Asia/Tokyo", locale="ja-JP")
    fake.add_user(MANAGER, tz="Europe/London", locale="en-GB")
    results: list[dict[str, Any]] = []
    starts: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="horenso-bench-") as tmp:
            results.append(
                lateness_run(fake, fresh_sqlite(Path(tmp), "late.db"), 1, "SQLite, 1 process")
            )
            starts.append(startup_run(fake, fresh_sqlite(Path(tmp), "big.db"), "SQLite"))
        if not args.no_pg:
            try:
                results.append(lateness_run(fake, fresh_pg(args.pg), 3, "PostgreSQL, 3 processes"))
                starts.append(startup_run(fake, fresh_pg(args.pg), "PostgreSQL"))
            finally:
                drop_pg(args.pg)
    finally:
        fake.stop()
    ok = all(
        r["p99"] <= 1.0 and r["duplicates"] == 0 and r["losses"] == 0 for r in results
    ) and all(s["startup"] <= 3.0 and s["rss"] <= 200 for s in starts)
    print("targets   p99 ≤ 1 s, start-up ≤ 3 s, RSS ≤ 200 MB, 0 duplicates, 0 losses:",
          "met" if ok else "NOT met")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

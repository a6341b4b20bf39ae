"""`/mistake` burst benchmark: Horenso against the bare Bolt baseline of DESIGN §8.

    .venv/bin/python bench/ack_latency.py [--rounds 5] [--burst 50] [--json out.json|-]

Starts a fake Slack, a fresh SQLite database, the Horenso bot (`python -m bot serve`, HTTP
mode) and the bare Bolt app (bench/bare_bolt_app.py, gunicorn gthread with the same thread
count), then, for each simulated Slack latency, fires bursts of concurrent signed `/mistake`
requests (one distinct user each, released together by a barrier) at both, interleaved.

Per request it measures the ack latency (client-side HTTP round trip) and the
command-to-views.open latency (send time → the fake's record of the views.open call for that
request's trigger_id; both on this process's monotonic clock). A request fails on a non-200
ack, an exception, or no successful views.open within 5 s; fake Slack violations (expired or
reused trigger ids, bad views) are counted as failures too.

Target (DESIGN §8): p99 within 1.5x of the bare app, no failed request.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.harness.botprocess import (  # noqa: E402
    BOT_TOKEN,
    SIGNING_SECRET,
    BotProcess,
    free_port,
)
from tests.harness.fakeslack import FakeSlack  # noqa: E402
from tests.harness.slackrequests import SlackRequests  # noqa: E402

TARGET_RATIO = 1.5
OPEN_TIMEOUT = 5.0
WEB_THREADS = 32  # Horenso's default WEB_THREADS; the bare app gets the same
TARGETS = ("bare", "horenso")


@dataclass
class Sample:
    target: str
    latency: float
    round: int
    user: str
    trigger_id: str
    sent: float
    status: int = 0
    ack: float | None = None
    open: float | None = None
    error: str = ""

    @property
    def failed(self) -> bool:
        return bool(self.error)


@dataclass
class RoundResult:
    target: str
    latency: float
    round: int
    warmup: bool
    samples: list[Sample] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)
    wall: float = 0.0


# ---------------------------------------------------------------------------- processes


class BareBolt:
    """bench/bare_bolt_app.py as a subprocess."""

    def __init__(self, api_url: str, threads: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_url = api_url
        self.threads = threads
        self.log = tempfile.NamedTemporaryFile(prefix="bare-bolt-", suffix=".log", delete=False)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> BareBolt:
        args = [
            sys.executable,
            str(ROOT / "bench" / "bare_bolt_app.py"),
            "--port",
            str(self.port),
            "--api-url",
            self.api_url,
            "--token",
            BOT_TOKEN,
            "--signing-secret",
            SIGNING_SECRET,
            "--threads",
            str(self.threads),
        ]
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bare app exited with {self.proc.returncode}:\n{self.output()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"bare app did not become healthy:\n{self.output()}")

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


# ---------------------------------------------------------------------------- measuring


def burst(
    client: SlackRequests, fake: FakeSlack, users: list[str], target: str, latency: float, rnd: int
) -> list[Sample]:
    """Send one signed `/mistake` per user, all released together; return the samples."""
    samples: list[Sample | None] = [None] * len(users)
    barrier = threading.Barrier(len(users))

    def one(i: int, user: str) -> None:
        barrier.wait()
        trigger = fake.issue_trigger_id()
        sample = Sample(target, latency, rnd, user, trigger, time.monotonic())
        samples[i] = sample
        try:
            resp = client.command(user_id=user, trigger_id=trigger)
            sample.status, sample.ack = resp.status, resp.elapsed
            if resp.status != 200:
                sample.error = f"ack HTTP {resp.status}"
        except Exception as exc:
            sample.error = f"ack {type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=one, args=(i, u), daemon=True) for i, u in enumerate(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return [s for s in samples if s is not None]


def collect_opens(fake: FakeSlack, samples: list[Sample]) -> None:
    """Wait (≤ 5 s after each send) for each trigger's views.open; fill `open`/`error`."""
    pending = {s.trigger_id: s for s in samples if not s.failed}
    deadline = max((s.sent for s in samples), default=time.monotonic()) + OPEN_TIMEOUT
    while True:
        for call in fake.calls_to("views.open"):
            sample = pending.get(str(call.params.get("trigger_id")))
            if sample is None:
                continue
            del pending[sample.trigger_id]
            if call.at - sample.sent > OPEN_TIMEOUT:
                sample.error = f"views.open after {call.at - sample.sent:.2f}s"
            elif not call.ok:
                sample.error = f"views.open error={call.response.get('error')}"
            sample.open = call.at - sample.sent
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    for sample in pending.values():
        sample.error = sample.error or f"no views.open within {OPEN_TIMEOUT:.0f}s"


def run_round(
    target: str,
    client: SlackRequests,
    fake: FakeSlack,
    users: list[str],
    latency: float,
    rnd: int,
    warmup: bool,
) -> RoundResult:
    result = RoundResult(target, latency, rnd, warmup)
    n_calls, n_violations = len(fake.calls), len(fake.violations)
    started = time.monotonic()
    result.samples = burst(client, fake, users, target, latency, rnd)
    collect_opens(fake, result.samples)
    time.sleep(0.05)  # let stragglers (e.g. a slow users.info) land in this round's counts
    result.wall = time.monotonic() - started
    result.violations = list(fake.violations[n_violations:])
    for call in fake.calls[n_calls:]:
        result.calls[call.method] = result.calls.get(call.method, 0) + 1
    return result


# ---------------------------------------------------------------------------- reporting


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of a non-empty list."""
    xs = sorted(values)
    if len(xs) == 1:
        return xs[0]
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def stats(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values),
        "n": len(values),
    }


def summarise(results: list[RoundResult], latency: float) -> dict[str, Any]:
    out: dict[str, Any] = {"latency": latency, "targets": {}}
    for target in TARGETS:
        rounds = [r for r in results if r.target == target and r.latency == latency]
        measured = [r for r in rounds if not r.warmup]
        samples = [s for r in measured for s in r.samples]
        violations = [v for r in measured for v in r.violations]
        errors: dict[str, int] = {}
        for s in samples:
            if s.failed:
                errors[s.error] = errors.get(s.error, 0) + 1
        calls: dict[str, int] = {}
        for r in measured:
            for method, n in r.calls.items():
                calls[method] = calls.get(method, 0) + n
        out["targets"][target] = {
            "rounds": len(measured),
            "requests": len(samples),
            "ack": stats([s.ack for s in samples if s.ack is not None]),
            "open": stats([s.open for s in samples if s.open is not None]),
            "failed_requests": sum(s.failed for s in samples),
            "violations": violations,
            "failures": sum(s.failed for s in samples) + len(violations),
            "errors": errors,
            "calls_per_request": {m: n / max(1, len(samples)) for m, n in sorted(calls.items())},
            "warmup_failures": sum(s.failed for r in rounds if r.warmup for s in r.samples)
            + sum(len(r.violations) for r in rounds if r.warmup),
        }
    for metric in ("ack", "open"):
        bare = out["targets"]["bare"][metric]
        hor = out["targets"]["horenso"][metric]
        out[f"{metric}_p99_ratio"] = hor["p99"] / bare["p99"] if bare and hor else None
    ratios = [out["ack_p99_ratio"], out["open_p99_ratio"]]
    out["met"] = (
        all(r is not None and r <= TARGET_RATIO for r in ratios)
        and out["targets"]["horenso"]["failures"] == 0
    )
    return out


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def print_report(summaries: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print()
    print(
        f"/mistake bursts of {args.burst} concurrent signed requests, {args.rounds} measured "
        f"round(s) per target and latency (warm-up excluded); times in ms"
    )
    for summ in summaries:
        lat = summ["latency"]
        print()
        print(f"== Slack latency {lat * 1000:.0f} ms ==")
        header = (
            f"{'metric':<6} {'target':<8} {'p50':>6} {'p95':>6} {'p99':>6} {'max':>6} "
            f"{'n':>5} {'fails':>5}  p99 horenso/bare"
        )
        print(header)
        print("-" * len(header))
        for metric in ("ack", "open"):
            for target in TARGETS:
                t = summ["targets"][target]
                st = t[metric] or {}
                ratio = ""
                if target == "horenso":
                    r = summ[f"{metric}_p99_ratio"]
                    ratio = "-" if r is None else f"{r:.2f}x"
                print(
                    f"{metric:<6} {target:<8} {ms(st.get('p50')):>6} {ms(st.get('p95')):>6} "
                    f"{ms(st.get('p99')):>6} {ms(st.get('max')):>6} {st.get('n', 0):>5} "
                    f"{t['failures']:>5}  {ratio}"
                )
        for target in TARGETS:
            t = summ["targets"][target]
            calls = ", ".join(f"{m} {n:.2f}" for m, n in t["calls_per_request"].items())
            print(f"  {target}: Slack calls per request: {calls or '-'}")
            for err, n in sorted(t["errors"].items()):
                print(f"  {target}: {n} x {err}")
            for v in t["violations"][:5]:
                print(f"  {target}: violation: {v}")
            if t["warmup_failures"]:
                print(f"  {target}: {t['warmup_failures']} failure(s) in warm-up (not counted)")
    print()
    for summ in summaries:
        lat = summ["latency"]
        hor = summ["targets"]["horenso"]
        verdict = "MET" if summ["met"] else "NOT MET"
        ack_r, open_r = summ["ack_p99_ratio"], summ["open_p99_ratio"]
        print(
            f"Slack latency {lat * 1000:.0f} ms: target 'p99 within {TARGET_RATIO}x of the bare "
            f"app, no failed request' {verdict} (ack p99 "
            f"{'-' if ack_r is None else f'{ack_r:.2f}x'}, open p99 "
            f"{'-' if open_r is None else f'{open_r:.2f}x'}, horenso failures {hor['failures']})"
        )


# ---------------------------------------------------------------------------- main


def _sigterm(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds per setting")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up rounds per setting")
    parser.add_argument("--burst", type=int, default=50, help="concurrent requests per round")
    parser.add_argument("--users", type=int, default=60, help="distinct users in the fake")
    parser.add_argument(
        "--latencies", default="0,0.1", help="comma-separated simulated Slack latencies (s)"
    )
    parser.add_argument("--json", metavar="PATH", help="dump raw figures as JSON ('-': stdout)")
    args = parser.parse_args(argv)
    latencies = [float(x) for x in args.latencies.split(",") if x.strip()]
    n_users = max(args.users, args.burst)
    signal.signal(signal.SIGTERM, _sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored

    fake = FakeSlack().start()
    # Trigger ids are still checked (an expired one counts as a failure), but not every block
    # of every view: that validation runs in this process, next to the client threads whose
    # clocks measure the acks, and Horenso's 20-block modal would pay for it, not the bare
    # app's one block. The tests check the modal against Slack's limits.
    fake.check_blocks = False
    users = [f"U{i:04d}" for i in range(1, n_users + 1)]
    for i, uid in enumerate(users):
        fake.add_user(uid, locale="ja-JP" if i % 3 else "en-US")
    tmp = tempfile.TemporaryDirectory(prefix="horenso-bench-")
    bot = BotProcess(
        fake.api_url,
        f"sqlite:///{tmp.name}/horenso.db",
        DELIVERY_SWEEP_SECONDS="5",  # production defaults, not the test harness's fast sweep
        DELIVERY_BACKOFF_CAP_SECONDS="30",
    )
    bare = BareBolt(fake.api_url, WEB_THREADS)
    results: list[RoundResult] = []
    started = time.monotonic()
    try:
        print("starting fake Slack, Horenso (migrating a fresh SQLite db) and bare Bolt ...")
        bare.start()
        bot.start(migrate=True)
        clients = {
            "bare": SlackRequests(bare.url, SIGNING_SECRET, fake),
            "horenso": SlackRequests(bot.url, SIGNING_SECRET, fake),
        }
        rnd = 0
        for latency in latencies:
            fake.latency = latency
            print(f"Slack latency {latency * 1000:.0f} ms: ", end="", flush=True)
            # Warm-up: every user once (fills Horenso's profile cache, auth.test, imports).
            for _ in range(args.warmup):
                for target in TARGETS:
                    results.append(
                        run_round(target, clients[target], fake, users, latency, rnd, True)
                    )
                    print("w", end="", flush=True)
                rnd += 1
            for i in range(args.rounds):
                offset = (i * args.burst) % n_users
                batch = (users[offset:] + users[:offset])[: args.burst]
                order = TARGETS if i % 2 == 0 else TARGETS[::-1]
                for target in order:
                    time.sleep(0.2)
                    results.append(
                        run_round(target, clients[target], fake, batch, latency, rnd, False)
                    )
                    print(".", end="", flush=True)
                rnd += 1
            print()
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        bot.stop()
        bare.stop()
        fake.stop()
        tmp.cleanup()
        for log in (bot.log, bare.log):
            log.close()
            Path(log.name).unlink(missing_ok=True)

    summaries = [summarise(results, lat) for lat in latencies]
    print_report(summaries, args)
    print(f"(total {time.monotonic() - started:.0f} s)")
    if args.json:
        raw = {
            "args": vars(args),
            "summaries": summaries,
            "rounds": [asdict(r) for r in results],
        }
        text = json.dumps(raw, indent=1)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text)
            print(f"raw figures written to {args.json}")
    return 0 if all(s["met"] for s in summaries) else 1


if __name__ == "__main__":
    sys.exit(main())

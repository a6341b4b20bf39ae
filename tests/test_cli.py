"""`python -m bot` as an operator runs it: real subprocesses, a scrubbed environment."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from bot.config import normalise_database_url
from tests.harness.botprocess import BOT_TOKEN, SIGNING_SECRET, BotProcess
from tests.harness.fakeslack import FakeSlack
from tests.harness.slackrequests import SlackRequests

EXPECTED_TABLES = {"alembic_version", "incidents", "user_settings", "slack_events"}


def scrubbed_env(**extra: str) -> dict[str, str]:
    """Only what a process needs to run Python; no Slack or database settings."""
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "SYSTEMROOT") if k in os.environ}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_bot(
    *args: str, cwd: Path, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=scrubbed_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def is_postgres() -> bool:
    return normalise_database_url(os.environ.get("TEST_DATABASE_URL", "")).startswith("postgresql")


@pytest.fixture
def fresh_database_url(tmp_path: Path) -> Iterator[str]:
    """An empty database on the backend under test, thrown away afterwards."""
    if not is_postgres():
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    server = make_url(normalise_database_url(os.environ["TEST_DATABASE_URL"]))
    name = f"horenso_h5_cli_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield server.set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def test_no_credentials_exits_2_with_one_line_naming_the_keys(tmp_path: Path) -> None:
    for args in ((), ("serve",)):
        result = run_bot(*args, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert "SLACK_BOT_TOKEN" in lines[0]
        assert "SLACK_SIGNING_SECRET" in lines[0]
        assert "Traceback" not in result.stderr
    # It stopped before touching the default database.
    assert not (tmp_path / "horenso.db").exists()


def test_empty_credentials_count_as_missing(tmp_path: Path) -> None:
    result = run_bot("serve", cwd=tmp_path, SLACK_BOT_TOKEN="", SLACK_SIGNING_SECRET="  ")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "SLACK_BOT_TOKEN" in lines[0]
    assert "SLACK_SIGNING_SECRET" in lines[0]


def test_socket_mode_without_bot_token_names_the_bot_token(tmp_path: Path) -> None:
    result = run_bot("serve", cwd=tmp_path, SLACK_APP_TOKEN="xapp-1")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "SLACK_BOT_TOKEN" in lines[0]
    assert "SLACK_SIGNING_SECRET" not in lines[0]


@pytest.mark.parametrize("command", [("serve",), ("migrate",)])
def test_malformed_port_exits_2_naming_port(tmp_path: Path, command: tuple[str, ...]) -> None:
    result = run_bot(
        *command,
        cwd=tmp_path,
        PORT="eighty",
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "PORT" in lines[0]
    assert "Traceback" not in result.stderr


def test_dotenv_in_the_working_directory_is_read(tmp_path: Path) -> None:
    """The `.env` next to where the bot starts is read: its malformed PORT stops start-up."""
    (tmp_path / ".env").write_text("PORT=not-a-port\n", encoding="utf-8")
    result = run_bot("migrate", cwd=tmp_path)
    assert result.returncode == 2
    assert "PORT" in result.stderr


def test_migrate_creates_the_default_sqlite_database_and_is_idempotent(tmp_path: Path) -> None:
    first = run_bot("migrate", cwd=tmp_path)  # needs no setting at all
    assert first.returncode == 0, first.stderr
    db_file = tmp_path / "horenso.db"
    assert db_file.exists()
    assert table_names(f"sqlite:///{db_file}") >= EXPECTED_TABLES
    second = run_bot("migrate", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert table_names(f"sqlite:///{db_file}") >= EXPECTED_TABLES


def test_migrate_on_the_backend_under_test_is_idempotent(
    tmp_path: Path, fresh_database_url: str
) -> None:
    for _ in range(2):
        result = run_bot("migrate", cwd=tmp_path, DATABASE_URL=fresh_database_url)
        assert result.returncode == 0, result.stderr
    assert table_names(normalise_database_url(fresh_database_url)) >= EXPECTED_TABLES
    engine = create_engine(normalise_database_url(fresh_database_url))
    try:
        with engine.connect() as conn:
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    finally:
        engine.dispose()
    assert len(versions) == 1


def test_two_migrates_started_together_both_succeed(
    tmp_path: Path, fresh_database_url: str
) -> None:
    """Replicas starting together: PostgreSQL serialises them with an advisory lock; SQLite
    serialises them on its write lock (BEGIN IMMEDIATE with a busy timeout)."""
    url = fresh_database_url
    env = scrubbed_env(DATABASE_URL=url)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "bot", "migrate"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=90) for p in procs]
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    assert table_names(normalise_database_url(url)) >= EXPECTED_TABLES


def test_serve_migrates_first(tmp_path: Path, fake: FakeSlack) -> None:
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    bot = BotProcess(fake.api_url, url)
    try:
        bot.start(migrate=True)
        resp = SlackRequests(bot.url, SIGNING_SECRET, fake=fake).get("/healthz")
        assert resp.status == 200
        assert table_names(url) >= EXPECTED_TABLES
    finally:
        bot.stop()
    assert bot.proc is not None
    assert bot.proc.returncode == 0, bot.output()


def test_serve_no_migrate_leaves_the_database_alone(tmp_path: Path, fake: FakeSlack) -> None:
    url = f"sqlite:///{tmp_path / 'nomigrate.db'}"
    bot = BotProcess(fake.api_url, url)
    try:
        bot.start(migrate=False)
        assert SlackRequests(bot.url, SIGNING_SECRET, fake=fake).get("/healthz").status == 200
        assert "alembic_version" not in table_names(url)
        assert "incidents" not in table_names(url)
    finally:
        bot.stop()


def test_tokens_never_appear_in_the_log(tmp_path: Path, fake: FakeSlack) -> None:
    """Even at DEBUG, through Slack calls, bad requests and a listener error."""
    url = f"sqlite:///{tmp_path / 'log.db'}"
    bot = BotProcess(fake.api_url, url, LOG_LEVEL="DEBUG")
    try:
        bot.start(migrate=True)
        slack = SlackRequests(bot.url, SIGNING_SECRET, fake=fake)
        fake.add_user("U0LOG", name="log", real_name="Log Person", locale="en-US")
        assert slack.command(user_id="U0LOG").status == 200
        fake.wait_for("views.open")
        assert slack.command(text="help", user_id="U0LOG").status == 200
        fake.wait_for_response()
        assert slack.raw("payload=not-json").status == 400
        assert slack.raw("a=b", signature="v0=bad").status == 401
        fake.fail("views.open", status=500, times=5)
        assert slack.command(user_id="U0LOG").status == 200
        fake.wait_for("views.open", count=2)
    finally:
        bot.stop()
    output = bot.output()
    assert output, "the bot logged nothing"
    assert BOT_TOKEN not in output
    assert SIGNING_SECRET not in output

"""Shared fixtures: the database under test, the fake Slack, the running bot, the client.

The database comes from TEST_DATABASE_URL (a temporary SQLite file when unset), is rebuilt
with the real Alembic migrations once per session and emptied before each test.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.config import normalise_database_url
from bot.db import Database, migrate
from bot.models import Base
from tests.harness.botprocess import BOT_TOKEN, SIGNING_SECRET, BotProcess
from tests.harness.fakeslack import FakeSlack
from tests.harness.slackrequests import SlackRequests

REPORTER = "U0REPORTER"  # writes Japanese, Tokyo
MANAGER = "U0MANAGER"  # reads English, London
MANAGER_JA = "U0MANAGERJA"  # Japanese manager
OTHER = "U0OTHER"  # a colleague with no role in the case
BOT_USER = "U0SOMEBOT"
GONE = "U0GONE"  # deactivated


def add_standard_users(fake: FakeSlack) -> None:
    fake.add_user(
        REPORTER,
        name="tanaka",
        real_name="田中 太郎",
        tz="Asia/Tokyo",
        tz_offset=32400,
        locale="ja-JP",
        title="営業部",
    )
    fake.add_user(
        MANAGER,
        name="smith",
        real_name="Jane Smith",
        tz="Europe/London",
        tz_offset=0,
        locale="en-GB",
        title="Sales Manager",
    )
    fake.add_user(
        MANAGER_JA,
        name="suzuki",
        real_name="鈴木 花子",
        tz="Asia/Tokyo",
        tz_offset=32400,
        locale="ja-JP",
        title="営業部長",
    )
    fake.add_user(
        OTHER,
        name="other",
        real_name="Other Person",
        tz="America/New_York",
        tz_offset=-18000,
        locale="en-US",
    )
    fake.add_user(BOT_USER, name="somebot", real_name="Some Bot", is_bot=True)
    fake.add_user(GONE, name="gone", real_name="Gone Person", deleted=True)


def test_database_url(tmp_dir: Path) -> str:
    url = os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{tmp_dir / 'horenso-test.db'}"
    return normalise_database_url(url)


def rebuild_schema(db: Database) -> None:
    """Start from nothing, then apply the real migrations."""
    if db.is_postgres:
        with db.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    else:
        path = db.url.split("///", 1)[1]
        db.dispose()
        for suffix in ("", "-wal", "-shm"):
            Path(path + suffix).unlink(missing_ok=True)
    migrate(db)


def empty_tables(db: Database) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with db.engine.begin() as conn:
        if db.is_postgres:
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                conn.execute(text(f"DELETE FROM {name}"))  # noqa: S608 (our own table names)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = test_database_url(tmp_path_factory.mktemp("db"))
    db = Database(url)
    rebuild_schema(db)
    db.dispose()
    yield url


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    empty_tables(database)
    yield database
    database.dispose()


@pytest.fixture(scope="session")
def fake_session() -> Iterator[FakeSlack]:
    fake = FakeSlack(token=BOT_TOKEN).start()
    yield fake
    fake.stop()


@pytest.fixture
def fake(fake_session: FakeSlack) -> Iterator[FakeSlack]:
    fake_session.reset()
    add_standard_users(fake_session)
    yield fake_session
    fake_session.assert_no_violations()


@pytest.fixture(scope="session")
def bot_session(fake_session: FakeSlack, database_url: str) -> Iterator[BotProcess]:
    bot = BotProcess(fake_session.api_url, database_url).start()
    yield bot
    bot.stop()


def wait_until_quiet(fake: FakeSlack, quiet: float = 0.4, limit: float = 8.0) -> None:
    """Wait until the bot has made no Slack call for `quiet` seconds (at most `limit`).

    The bot process is shared by tests: work still in flight from one test (a delivery being
    sent after its ack) must not land in the next test's emptied database or fake Slack.
    """
    deadline = time.monotonic() + limit
    seen, since = len(fake.calls), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if len(fake.calls) != seen:
            seen, since = len(fake.calls), time.monotonic()
        elif time.monotonic() - since >= quiet:
            return


@pytest.fixture
def bot(bot_session: BotProcess, db: Database, fake: FakeSlack) -> Iterator[BotProcess]:
    """The shared bot process, with an empty database and a fresh fake Slack."""
    if bot_session.proc is None or bot_session.proc.poll() is not None:
        raise RuntimeError(f"the bot died:\n{bot_session.output()}")
    yield bot_session
    fake.clear_failures()
    wait_until_quiet(fake)


@pytest.fixture
def slack(bot: BotProcess, fake: FakeSlack) -> SlackRequests:
    return SlackRequests(bot.url, SIGNING_SECRET, fake=fake)

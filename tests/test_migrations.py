"""The Alembic migrations: up, down and up again on a throwaway database, no drift from the
models, and every datetime column comes back timezone-aware."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import JSON, Boolean, Integer, String, Text, create_engine, inspect, select, text
from sqlalchemy.engine import make_url

from bot.config import normalise_database_url
from bot.db import Database, alembic_config, migrate
from bot.models import Base, UserSetting
from bot.types import UTCDateTime

JST = timezone(timedelta(hours=9))
MOMENT = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=JST)  # 00:30:15.123456 UTC


def _backend_url() -> str:
    return normalise_database_url(os.environ.get("TEST_DATABASE_URL") or "sqlite://")


@pytest.fixture
def throwaway_url(tmp_path: Path) -> Iterator[str]:
    """An empty database on the backend under test, dropped afterwards."""
    backend = _backend_url()
    if not backend.startswith("postgresql"):
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
        return
    server = make_url(backend)
    name = f"horenso_h5_mig_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield server.set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _current(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if "alembic_version" not in inspect(conn).get_table_names():
                return []
            return [r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))]
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade_and_no_drift(throwaway_url: str) -> None:
    cfg = alembic_config(throwaway_url)
    head = ScriptDirectory.from_config(cfg).get_current_head()
    model_tables = set(Base.metadata.tables)

    command.upgrade(cfg, "head")
    assert _current(throwaway_url) == [head]
    assert model_tables <= _tables(throwaway_url)

    command.downgrade(cfg, "base")
    assert _current(throwaway_url) == []
    assert _tables(throwaway_url) <= {"alembic_version"}

    command.upgrade(cfg, "head")
    assert _current(throwaway_url) == [head]
    assert model_tables <= _tables(throwaway_url)

    # `alembic check`: autogenerate finds nothing to add, drop or alter.
    command.check(cfg)


def test_migrate_helper_matches_alembic(throwaway_url: str) -> None:
    """`bot.db.migrate` (what `python -m bot migrate` runs) reaches the same head, twice."""
    db = Database(throwaway_url, pool_size=1)
    try:
        migrate(db)
        migrate(db)
    finally:
        db.dispose()
    cfg = alembic_config(throwaway_url)
    assert _current(throwaway_url) == [ScriptDirectory.from_config(cfg).get_current_head()]
    command.check(cfg)


def _value_for(column: Any) -> Any:
    if column.foreign_keys:
        return 1 if not column.nullable else None
    kind = column.type
    if isinstance(kind, UTCDateTime):
        return MOMENT
    if isinstance(kind, Boolean):
        return False
    if isinstance(kind, Integer):
        return 1
    if isinstance(kind, JSON):
        return {"k": "v"}
    if isinstance(kind, String | Text):
        return "x"
    raise AssertionError(f"no test value for {column.table.name}.{column.name}: {kind!r}")


def test_every_datetime_column_comes_back_timezone_aware(throwaway_url: str) -> None:
    command.upgrade(alembic_config(throwaway_url), "head")
    datetime_columns = [
        (table, column)
        for table in Base.metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, UTCDateTime)
    ]
    assert len(datetime_columns) >= 10  # the check below really covers the schema

    db = Database(throwaway_url, pool_size=1)
    try:
        with db.engine.begin() as conn:
            for table in Base.metadata.sorted_tables:  # parents before children
                conn.execute(table.insert().values({c.name: _value_for(c) for c in table.columns}))
        with db.engine.connect() as conn:
            for table, column in datetime_columns:
                value = conn.execute(select(column)).scalar_one()
                where = f"{table.name}.{column.name}"
                assert isinstance(value, datetime), where
                assert value.tzinfo is not None, f"{where} came back naive"
                assert value.utcoffset() == timedelta(0), where
                assert value == MOMENT, where  # the same instant, microseconds kept
        with db.session() as s:
            row = s.get(UserSetting, "x")
            assert row is not None
            assert row.profile_fetched_at is not None
            assert row.profile_fetched_at.tzinfo is not None
            assert row.profile_fetched_at == MOMENT
            assert row.profile_fetched_at.astimezone(UTC).hour == 0
        with pytest.raises(Exception, match="naive"), db.session() as s:
            s.add(UserSetting(user_id="naive", updated_at=datetime(2026, 1, 1)))
        if db.is_postgres:  # the columns themselves store the offset
            reflected = inspect(db.engine)
            for table, column in datetime_columns:
                found = {c["name"]: c for c in reflected.get_columns(table.name)}
                assert found[column.name]["type"].timezone, f"{table.name}.{column.name}"
    finally:
        db.dispose()

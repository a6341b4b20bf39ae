"""Engine, sessions and migrations.

SQLite is the embedded default and PostgreSQL the production database shared by replicas; the
differences (locking, busy waits, advisory locks for migrations) are contained here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
MIGRATION_LOCK_KEY = 0x484F52454E534F  # "HORENSO": one advisory lock id for all replicas


def make_engine(url: str, pool_size: int = 10) -> Engine:
    """Create an engine tuned for many short transactions from listener and scheduler threads."""
    if url.startswith("sqlite"):
        # One connection per thread that may need one: opening a connection runs PRAGMAs,
        # and a burst that overflows a small pool pays for that on every request.
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=max(pool_size, 64),
            max_overflow=64,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy drive transactions, and take the write lock at BEGIN: a deferred
            # transaction that upgrades to a writer fails at once with "database is locked"
            # instead of waiting for the busy timeout.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # Readers (Database.read) take no write lock, so a burst of /mistake modals does
            # not queue behind one another.
            if conn.get_execution_options().get("horenso_readonly"):
                conn.exec_driver_sql("BEGIN")
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=40, pool_pre_ping=True)


class Database:
    """The engine and session factory of one process."""

    def __init__(self, url: str, pool_size: int = 10) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_lock = threading.RLock() if url.startswith("sqlite") else None
        self.read_engine = self.engine.execution_options(horenso_readonly=True)
        self.readers = sessionmaker(self.read_engine, expire_on_commit=False)

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on error.

        On SQLite the writers of this process also queue on a lock of their own: SQLite's busy
        handler sleeps with growing back-off while it waits for the write lock, so under a
        burst a waiting writer could sleep long after the lock was free (the sign-off bench saw
        submissions miss Slack's 3 s). Other processes still meet at SQLite's own lock.
        """
        if self._write_lock is None:
            with self.sessions() as session, session.begin():
                yield session
            return
        with self._write_lock, self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reads only: on SQLite it takes no write lock."""
        with self.readers() as session, session.begin():
            yield session

    def ping(self) -> bool:
        """True when the database answers a trivial query (for /healthz)."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:  # any failure means "not healthy", never a 500
            log.warning("database ping failed", exc_info=True)
            return False

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(url: str) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.attributes["database_url"] = url
    return cfg


def migrate(db: Database, revision: str = "head") -> None:
    """Upgrade the schema; on PostgreSQL under an advisory lock so replicas migrate once.

    Alembic does not guard concurrent upgrades itself: two replicas starting together would
    both try to create the tables.
    """
    cfg = alembic_config(db.url)
    with db.engine.connect() as conn:
        if db.is_postgres:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
            conn.commit()
        try:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
            conn.commit()
        finally:
            if db.is_postgres:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY})
                conn.commit()

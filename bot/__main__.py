"""Command line: `python -m bot [serve [--no-migrate] | migrate]`.

`serve` runs HTTP mode on gunicorn (gthread worker: DESIGN §8 measured stdlib servers and
Bolt's dev server resetting connections under bursts) or Socket Mode when SLACK_APP_TOKEN is
set, with `/healthz` on PORT in both modes.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from bot.config import ConfigError, Settings, load_settings

log = logging.getLogger("bot")


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"
    )
    # slack_sdk logs request bodies at DEBUG, which could include tokens in URLs; keep it quiet.
    logging.getLogger("slack_sdk").setLevel(max(logging.INFO, logging.getLevelName(level)))
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # "skipped: maximum number of running instances reached" only means a sweep was still
    # running when the next one was due, which is expected under load.
    logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def cmd_migrate(settings: Settings) -> int:
    from bot.db import Database, migrate

    db = Database(settings.database_url, pool_size=1)
    try:
        migrate(db)
    finally:
        db.dispose()
    log.info("database is at the latest revision")
    return 0


def start_socket_mode(runtime: Any) -> None:
    """Connect to Slack over Socket Mode in the background, retrying until it works.

    A Slack outage at start-up must not kill the process: /healthz keeps answering and the
    deliveries keep their own retries.
    """
    import threading
    import time

    from slack_bolt.adapter.socket_mode import SocketModeHandler
    from slack_sdk import WebClient

    web = WebClient(
        base_url=runtime.settings.slack_api_url, retry_handlers=runtime.client.retry_handlers
    )
    handler = SocketModeHandler(runtime.app, runtime.settings.slack_app_token, web_client=web)

    def connect() -> None:
        delay = 1.0
        while True:
            try:
                handler.connect()
                log.info("Socket Mode connected")
                return
            except Exception as exc:  # keep serving /healthz; try again with backoff
                log.warning("Socket Mode connection failed (%s); retrying in %.0f s", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 60.0)

    threading.Thread(target=connect, name="socket-mode", daemon=True).start()


def cmd_serve(settings: Settings, no_migrate: bool, bind: str | None) -> int:
    settings.require_for_serve()
    if not no_migrate:
        cmd_migrate(settings)
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):  # type: ignore[misc]
        """Gunicorn embedded: one worker process with threads; the app is built in the worker."""

        def __init__(self) -> None:
            self.runtime: Any = None
            super().__init__()

        def load_config(self) -> None:
            self.cfg.set("bind", bind or f"0.0.0.0:{settings.port}")
            self.cfg.set("workers", 1)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("threads", settings.web_threads)
            self.cfg.set("backlog", 2048)
            self.cfg.set("timeout", 60)
            self.cfg.set("graceful_timeout", 10)
            self.cfg.set("keepalive", 5)
            self.cfg.set("accesslog", None)
            self.cfg.set("loglevel", settings.log_level.lower())
            self.cfg.set("worker_exit", self._worker_exit)

        def load(self) -> Any:
            from bot.app import build_runtime, make_wsgi

            self.runtime = build_runtime(settings)
            self.runtime.start_background()
            if settings.socket_mode:
                start_socket_mode(self.runtime)
                log.info("Socket Mode; /healthz on port %s", settings.port)
            else:
                log.info("HTTP mode: POST /slack/events, GET /healthz on port %s", settings.port)
            return make_wsgi(self.runtime)

        def _worker_exit(self, _server: Any, _worker: Any) -> None:
            if self.runtime is not None:
                self.runtime.shutdown()

    Server().run()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description="Horenso Slack bot")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the bot (default)")
    serve.add_argument("--no-migrate", action="store_true", help="skip migrating at start-up")
    serve.add_argument("--bind", help="address:port to listen on (default 0.0.0.0:$PORT)")
    sub.add_parser("migrate", help="apply database migrations and exit")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"horenso: configuration error: {exc}", file=sys.stderr)
        return 2
    _setup_logging(settings.log_level)
    try:
        if args.command == "migrate":
            return cmd_migrate(settings)
        return cmd_serve(settings, getattr(args, "no_migrate", False), getattr(args, "bind", None))
    except ConfigError as exc:
        print(f"horenso: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

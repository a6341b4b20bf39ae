"""The bare Bolt baseline of DESIGN §8: the best sync runtime, with no Horenso code.

A sync ``slack_bolt.App`` whose ``/mistake`` handler acks and opens a one-block modal, with a
64-thread ``listener_executor``, served by gunicorn gthread (1 worker, ``--threads`` threads)
through Bolt's WSGI adapter, plus ``GET /healthz`` so the benchmark can wait for it.

    python bench/bare_bolt_app.py --port 3100 --api-url http://127.0.0.1:8000/api/ \
        --token xoxb-test-token --signing-secret test-signing-secret --threads 32
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gunicorn.app.base import BaseApplication
from slack_bolt import Ack, App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient

MODAL = {
    "type": "modal",
    "callback_id": "bare_report",
    "title": {"type": "plain_text", "text": "Report"},
    "close": {"type": "plain_text", "text": "Cancel"},
    "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Hello"}}],
}


def build_app(api_url: str, token: str, signing_secret: str, listener_threads: int) -> App:
    app = App(
        signing_secret=signing_secret,
        token=token,
        client=WebClient(base_url=api_url, token=token),
        token_verification_enabled=False,
        listener_executor=ThreadPoolExecutor(max_workers=listener_threads),
    )

    @app.command("/mistake")
    def mistake(ack: Ack, command: dict[str, Any], client: WebClient) -> None:
        ack()
        client.views_open(trigger_id=command["trigger_id"], view=MODAL)

    return app


def make_wsgi(app: App) -> Callable[..., Iterable[bytes]]:
    handler = SlackRequestHandler(app)

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
            return [b"ok"]
        return handler(environ, start_response)

    return wsgi


class Server(BaseApplication):  # type: ignore[misc]
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        super().__init__()

    def load_config(self) -> None:
        self.cfg.set("bind", f"127.0.0.1:{self.args.port}")
        self.cfg.set("workers", 1)
        self.cfg.set("worker_class", "gthread")
        self.cfg.set("threads", self.args.threads)
        self.cfg.set("backlog", 2048)
        self.cfg.set("timeout", 60)
        self.cfg.set("graceful_timeout", 5)
        self.cfg.set("keepalive", 5)
        self.cfg.set("accesslog", None)
        self.cfg.set("loglevel", "warning")

    def load(self) -> Any:
        app = build_app(
            self.args.api_url, self.args.token, self.args.signing_secret, self.args.listener_threads
        )
        return make_wsgi(app)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--token", default="xoxb-test-token")
    parser.add_argument("--signing-secret", default="test-signing-secret")
    parser.add_argument("--threads", type=int, default=32, help="gunicorn gthread threads")
    parser.add_argument("--listener-threads", type=int, default=64)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    Server(args).run()


if __name__ == "__main__":
    main()

"""Settings from the environment and `.env` (DESIGN §4).

Start-up must fail with one clear line naming the key, never a traceback: a missing token is
the most common first-run mistake, and the person fixing it is reading a terminal.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import load_dotenv

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_DATABASE_URL = "sqlite:///./horenso.db"
LOCALES = ("ja", "en")
BLAME_POLICIES = ("block", "warn", "off")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the key."""


@dataclass(frozen=True)
class Settings:
    """Every runtime setting, validated once at start-up."""

    slack_bot_token: str = field(default="", repr=False)
    slack_signing_secret: str = field(default="", repr=False)
    slack_app_token: str = field(default="", repr=False)
    slack_api_url: str = DEFAULT_SLACK_API_URL
    database_url: str = DEFAULT_DATABASE_URL
    port: int = 3000
    reminder_lead_seconds: int = 300
    escalation_after_seconds: int = 900
    manager_sla_seconds: int = 900
    delivery_sweep_seconds: float = 5.0
    default_locale: str = "ja"
    blame_policy: str = "warn"
    company_name: str = ""
    log_level: str = "INFO"
    web_threads: int = 32
    listener_threads: int = 64
    delivery_lease_seconds: float = 60.0
    delivery_max_attempts: int = 20
    delivery_backoff_cap_seconds: float = 30.0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def socket_mode(self) -> bool:
        return bool(self.slack_app_token)

    def require_for_serve(self) -> None:
        """Check the keys the chosen mode needs (an empty value counts as missing)."""
        needed = ["SLACK_BOT_TOKEN"]
        needed += ["SLACK_APP_TOKEN"] if self.socket_mode else ["SLACK_SIGNING_SECRET"]
        values = {
            "SLACK_BOT_TOKEN": self.slack_bot_token,
            "SLACK_SIGNING_SECRET": self.slack_signing_secret,
            "SLACK_APP_TOKEN": self.slack_app_token,
        }
        missing = [k for k in needed if not values[k]]
        if missing:
            mode = "Socket Mode" if self.socket_mode else "HTTP mode"
            raise ConfigError(
                f"missing required setting {', '.join(missing)} for {mode}: "
                "set it in the environment or in .env (see .env.example)"
            )
        if not self.slack_bot_token.startswith("xoxb-"):
            raise ConfigError("malformed SLACK_BOT_TOKEN: a bot token starts with 'xoxb-'")
        if self.socket_mode and not self.slack_app_token.startswith("xapp-"):
            raise ConfigError("malformed SLACK_APP_TOKEN: an app-level token starts with 'xapp-'")


def _get(env: dict[str, str], key: str) -> str | None:
    value = env.get(key)
    if value is None:
        return None
    value = value.strip()
    return value or None


def _int(env: dict[str, str], key: str, default: int, minimum: int = 0) -> int:
    raw = _get(env, key)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"malformed {key}={raw!r}: expected a whole number") from None
    if value < minimum:
        raise ConfigError(f"malformed {key}={raw!r}: must be at least {minimum}")
    return value


def _float(env: dict[str, str], key: str, default: float, minimum: float = 0.0) -> float:
    raw = _get(env, key)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"malformed {key}={raw!r}: expected a number of seconds") from None
    if not math.isfinite(value):  # float() accepts "nan" and "inf"; neither is a duration
        raise ConfigError(f"malformed {key}={raw!r}: expected a finite number of seconds")
    if value <= minimum:
        raise ConfigError(f"malformed {key}={raw!r}: must be greater than {minimum:g}")
    return value


def _choice(env: dict[str, str], key: str, default: str, choices: tuple[str, ...]) -> str:
    raw = _get(env, key)
    if raw is None:
        return default
    value = raw.upper() if key == "LOG_LEVEL" else raw.lower()
    if value not in choices:
        raise ConfigError(f"malformed {key}={raw!r}: expected one of {', '.join(choices)}")
    return value


def normalise_database_url(url: str) -> str:
    """`postgresql://` means psycopg 3 here (SQLAlchemy would otherwise pick psycopg2)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def load_settings(env: dict[str, str] | None = None, dotenv_path: str | None = None) -> Settings:
    """Read settings; `.env` fills only keys the environment does not set."""
    if env is None:
        load_dotenv(dotenv_path or Path.cwd() / ".env", override=False)
        env = dict(os.environ)
    api_url = _get(env, "SLACK_API_URL") or DEFAULT_SLACK_API_URL
    if not api_url.startswith(("http://", "https://")):
        raise ConfigError(f"malformed SLACK_API_URL={api_url!r}: expected an http(s) URL")
    if not api_url.endswith("/"):
        api_url += "/"
    db_url = _get(env, "DATABASE_URL") or DEFAULT_DATABASE_URL
    if not db_url.startswith(("sqlite:", "postgresql", "postgres://")):
        raise ConfigError(
            f"malformed DATABASE_URL={db_url!r}: expected sqlite:///… or postgresql://…"
        )
    port = _int(env, "PORT", 3000, minimum=0)
    if port > 65535:
        raise ConfigError(f"malformed PORT={port}: must be at most 65535")
    return Settings(
        slack_bot_token=_get(env, "SLACK_BOT_TOKEN") or "",
        slack_signing_secret=_get(env, "SLACK_SIGNING_SECRET") or "",
        slack_app_token=_get(env, "SLACK_APP_TOKEN") or "",
        slack_api_url=api_url,
        database_url=normalise_database_url(db_url),
        port=port,
        reminder_lead_seconds=_int(env, "REMINDER_LEAD_SECONDS", 300, minimum=1),
        escalation_after_seconds=_int(env, "ESCALATION_AFTER_SECONDS", 900, minimum=1),
        manager_sla_seconds=_int(env, "MANAGER_SLA_SECONDS", 900, minimum=1),
        delivery_sweep_seconds=_float(env, "DELIVERY_SWEEP_SECONDS", 5.0),
        default_locale=_choice(env, "DEFAULT_LOCALE", "ja", LOCALES),
        blame_policy=_choice(env, "BLAME_POLICY", "warn", BLAME_POLICIES),
        company_name=_get(env, "COMPANY_NAME") or "",
        log_level=_choice(env, "LOG_LEVEL", "INFO", LOG_LEVELS),
        web_threads=_int(env, "WEB_THREADS", 32, minimum=1),
        listener_threads=_int(env, "LISTENER_THREADS", 64, minimum=1),
        delivery_lease_seconds=_float(env, "DELIVERY_LEASE_SECONDS", 60.0),
        delivery_max_attempts=_int(env, "DELIVERY_MAX_ATTEMPTS", 20, minimum=1),
        delivery_backoff_cap_seconds=_float(env, "DELIVERY_BACKOFF_CAP_SECONDS", 30.0),
    )

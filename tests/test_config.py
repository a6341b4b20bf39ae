"""Settings (DESIGN §4): defaults, normalisation, validation naming the key, `.env`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings

HTTP_CREDENTIALS = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s3cret"}
SOCKET_CREDENTIALS = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"}


def test_defaults_match_the_runtime_contract() -> None:
    s = load_settings({})
    assert s.slack_bot_token == ""
    assert s.slack_signing_secret == ""
    assert s.slack_app_token == ""
    assert s.socket_mode is False
    assert s.slack_api_url == "https://slack.com/api/"
    assert s.database_url == "sqlite:///./horenso.db"
    assert s.port == 3000
    assert s.reminder_lead_seconds == 300
    assert s.default_locale == "ja"
    assert s.blame_policy == "warn"
    assert s.company_name == ""
    assert s.log_level == "INFO"
    assert s.escalation_after_seconds > 0
    assert s.manager_sla_seconds > 0
    assert s.delivery_sweep_seconds > 0


def test_explicit_values_are_read() -> None:
    s = load_settings(
        {
            "PORT": "8080",
            "REMINDER_LEAD_SECONDS": "60",
            "ESCALATION_AFTER_SECONDS": "120",
            "MANAGER_SLA_SECONDS": "180",
            "DELIVERY_SWEEP_SECONDS": "0.5",
            "DEFAULT_LOCALE": "EN",
            "BLAME_POLICY": "Block",
            "COMPANY_NAME": " Example Co ",
            "LOG_LEVEL": "debug",
        }
    )
    assert s.port == 8080
    assert s.reminder_lead_seconds == 60
    assert s.escalation_after_seconds == 120
    assert s.manager_sla_seconds == 180
    assert s.delivery_sweep_seconds == 0.5
    assert s.default_locale == "en"
    assert s.blame_policy == "block"
    assert s.company_name == "Example Co"
    assert s.log_level == "DEBUG"


@pytest.mark.parametrize(
    "raw",
    ["http://127.0.0.1:9999/api", "http://127.0.0.1:9999/api/", " http://127.0.0.1:9999/api "],
)
def test_slack_api_url_with_or_without_trailing_slash(raw: str) -> None:
    assert load_settings({"SLACK_API_URL": raw}).slack_api_url == "http://127.0.0.1:9999/api/"


def test_empty_slack_api_url_means_the_default() -> None:
    assert load_settings({"SLACK_API_URL": ""}).slack_api_url == "https://slack.com/api/"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("postgresql://u:p@db:5432/h", "postgresql+psycopg://u:p@db:5432/h"),
        ("postgres://u@db/h", "postgresql+psycopg://u@db/h"),
        ("postgresql+psycopg://u@db/h", "postgresql+psycopg://u@db/h"),
        ("sqlite:////var/lib/h.db", "sqlite:////var/lib/h.db"),
    ],
)
def test_database_url_normalised_to_psycopg3(raw: str, expected: str) -> None:
    assert load_settings({"DATABASE_URL": raw}).database_url == expected


@pytest.mark.parametrize(
    ("key", "raw"),
    [
        ("PORT", "abc"),
        ("PORT", "3000.5"),
        ("PORT", "-1"),
        ("PORT", "70000"),
        ("REMINDER_LEAD_SECONDS", "five"),
        ("REMINDER_LEAD_SECONDS", "0"),
        ("ESCALATION_AFTER_SECONDS", "1e3x"),
        ("MANAGER_SLA_SECONDS", "-5"),
        ("WEB_THREADS", "many"),
        ("DELIVERY_SWEEP_SECONDS", "soon"),
        ("DELIVERY_SWEEP_SECONDS", "0"),
        ("DELIVERY_SWEEP_SECONDS", "-1.5"),
        ("DELIVERY_SWEEP_SECONDS", "nan"),
        ("DELIVERY_SWEEP_SECONDS", "inf"),
        ("DELIVERY_LEASE_SECONDS", "x"),
        ("DEFAULT_LOCALE", "fr"),
        ("BLAME_POLICY", "maybe"),
        ("LOG_LEVEL", "LOUD"),
        ("SLACK_API_URL", "slack.com/api"),
        ("DATABASE_URL", "mysql://db/h"),
    ],
)
def test_malformed_value_raises_config_error_naming_the_key(key: str, raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({key: raw})
    message = str(info.value)
    assert key in message
    assert "\n" not in message


def test_http_mode_needs_bot_token_and_signing_secret() -> None:
    load_settings(HTTP_CREDENTIALS).require_for_serve()
    with pytest.raises(ConfigError) as info:
        load_settings({}).require_for_serve()
    assert "SLACK_BOT_TOKEN" in str(info.value)
    assert "SLACK_SIGNING_SECRET" in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_settings({"SLACK_BOT_TOKEN": "xoxb-1"}).require_for_serve()
    assert "SLACK_SIGNING_SECRET" in str(info.value)
    assert "SLACK_BOT_TOKEN" not in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_settings({"SLACK_SIGNING_SECRET": "s3cret"}).require_for_serve()
    assert "SLACK_BOT_TOKEN" in str(info.value)


def test_socket_mode_needs_bot_token_and_app_token_not_signing_secret() -> None:
    settings = load_settings(SOCKET_CREDENTIALS)
    assert settings.socket_mode
    settings.require_for_serve()  # no signing secret needed in Socket Mode
    with pytest.raises(ConfigError) as info:
        load_settings({"SLACK_APP_TOKEN": "xapp-1"}).require_for_serve()
    assert "SLACK_BOT_TOKEN" in str(info.value)
    assert "SLACK_SIGNING_SECRET" not in str(info.value)


@pytest.mark.parametrize("empty", ["", "   "])
def test_empty_value_counts_as_missing(empty: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({**HTTP_CREDENTIALS, "SLACK_SIGNING_SECRET": empty}).require_for_serve()
    assert "SLACK_SIGNING_SECRET" in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_settings({**HTTP_CREDENTIALS, "SLACK_BOT_TOKEN": empty}).require_for_serve()
    assert "SLACK_BOT_TOKEN" in str(info.value)
    # An empty app token means HTTP mode, not a Socket Mode start without a token.
    settings = load_settings({**HTTP_CREDENTIALS, "SLACK_APP_TOKEN": empty})
    assert not settings.socket_mode
    settings.require_for_serve()
    # Empty optional values fall back to their defaults.
    assert load_settings({"PORT": empty, "DEFAULT_LOCALE": empty}).port == 3000


def test_tokens_are_not_in_the_settings_repr() -> None:
    text = repr(load_settings({**HTTP_CREDENTIALS, "SLACK_APP_TOKEN": "xapp-secret"}))
    assert "xoxb-1" not in text
    assert "s3cret" not in text
    assert "xapp-secret" not in text


@pytest.fixture
def clean_environ(tmp_path: Path) -> Iterator[Path]:
    """Run in `tmp_path` with no horenso keys in the environment; restore both afterwards."""
    saved_env, saved_cwd = dict(os.environ), Path.cwd()
    for key in list(os.environ):
        if key.startswith(("SLACK_", "DATABASE_", "PORT", "DEFAULT_", "BLAME_", "COMPANY_")):
            del os.environ[key]
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)


def test_dotenv_file_is_read_and_the_environment_wins(clean_environ: Path) -> None:
    (clean_environ / ".env").write_text(
        "# a comment\n"
        "SLACK_BOT_TOKEN=xoxb-from-dotenv\n"
        "SLACK_SIGNING_SECRET=secret-from-dotenv\n"
        "PORT=4000\n"
        "DEFAULT_LOCALE=en\n"
        "COMPANY_NAME=Dotenv Inc\n",
        encoding="utf-8",
    )
    os.environ["PORT"] = "5000"
    os.environ["COMPANY_NAME"] = "Env Corp"
    settings = load_settings()
    assert settings.slack_bot_token == "xoxb-from-dotenv"
    assert settings.slack_signing_secret == "secret-from-dotenv"
    assert settings.default_locale == "en"
    assert settings.port == 5000
    assert settings.company_name == "Env Corp"
    settings.require_for_serve()


def test_without_dotenv_file_the_defaults_apply(clean_environ: Path) -> None:
    settings = load_settings()
    assert settings.port == 3000
    assert settings.slack_bot_token == ""
    with pytest.raises(ConfigError):
        settings.require_for_serve()


def test_malformed_value_in_dotenv_names_the_key(clean_environ: Path) -> None:
    (clean_environ / ".env").write_text("MANAGER_SLA_SECONDS=soon\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="MANAGER_SLA_SECONDS"):
        load_settings()

"""Reading Slack payloads: view state values, ids carried in buttons and private_metadata.

Everything read here is untrusted: ids only locate rows, which the workflow then authorises.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from bot.ids import Action
from bot.workflow import Refused


def state_value(view: dict[str, Any], block_id: str) -> Any:
    """The value of the one input element in `block_id`, whatever its type."""
    values = ((view.get("state") or {}).get("values") or {}).get(block_id) or {}
    element = values.get(Action.INPUT) or next(iter(values.values()), None)
    if not isinstance(element, dict):
        return None
    kind = element.get("type")
    if kind == "static_select" or kind == "radio_buttons":
        return (element.get("selected_option") or {}).get("value")
    if kind == "users_select":
        return element.get("selected_user")
    if kind == "datetimepicker":
        epoch = element.get("selected_date_time")
        try:
            return datetime.fromtimestamp(int(epoch), UTC) if epoch is not None else None
        except (TypeError, ValueError, OverflowError, OSError):
            return None
    return element.get("value")


def text_value(view: dict[str, Any], block_id: str) -> str:
    value = state_value(view, block_id)
    return value if isinstance(value, str) else ""


def metadata(view: dict[str, Any]) -> dict[str, Any]:
    try:
        data = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def case_ref(value: Any) -> tuple[int, int] | None:
    """`"<incident id>:<version>"` from a button value or metadata, or None if malformed."""
    try:
        incident, version = str(value).split(":")
        return int(incident), int(version)
    except (TypeError, ValueError):
        return None


def require_case_ref(value: Any) -> tuple[int, int]:
    """`case_ref`, refusing a missing or malformed value the way a missing case is refused."""
    ref = case_ref(value)
    if ref is None:
        raise Refused("refused.no_case")
    return ref


def user_id(body: dict[str, Any]) -> str:
    return str((body.get("user") or {}).get("id") or body.get("user_id") or "")


def team_id(body: dict[str, Any]) -> str:
    user = body.get("user") or {}
    team = body.get("team") or {}
    return str(user.get("team_id") or team.get("id") or body.get("team_id") or "")

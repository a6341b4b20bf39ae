"""Every callback_id, action_id and block_id in one place (Slack payloads route on these)."""

from __future__ import annotations

from enum import StrEnum

COMMAND = "/mistake"


class Callback(StrEnum):
    REPORT = "horenso_report"
    REQUEST_CHANGES = "horenso_request_changes"
    WITHDRAW = "horenso_withdraw"


class Block(StrEnum):
    CLIENT = "client"
    SEVERITY = "severity"
    NOTICED_AT = "noticed_at"
    TIMELINE = "timeline"
    CLIENT_SITUATION = "client_situation"
    COUNTERMEASURE = "countermeasure"
    MANAGER = "manager"
    NEXT_CONTACT = "next_contact"
    COMMENT = "comment"
    REASON = "reason"
    DECISION = "decision"
    REPORTER_ACTIONS = "reporter_actions"


class Action(StrEnum):
    INPUT = "value"  # the one element inside each input block
    APPROVE = "approve"
    APPROVE_JOIN = "approve_join"
    REQUEST_CHANGES = "request_changes"
    WITHDRAW = "withdraw"
    EDIT_REPORT = "edit_report"


SUBCOMMANDS = ("help", "list", "status", "promise", "export")

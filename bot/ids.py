"""Every callback_id, action_id and block_id in one place (Slack payloads route on these)."""

from __future__ import annotations

from enum import StrEnum

COMMAND = "/mistake"


class Callback(StrEnum):
    REPORT = "horenso_report"
    REQUEST_CHANGES = "horenso_request_changes"
    WITHDRAW = "horenso_withdraw"
    PROMISE_ADD = "horenso_promise_add"
    PROMISE_NEXT = "horenso_promise_next"
    PROMISE_MOVE = "horenso_promise_move"
    REASSIGN = "horenso_reassign"
    LETTER = "horenso_letter"
    APOLOGY = "horenso_apology"
    PLAN = "horenso_plan"


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
    PROMISE_ACTIONS = "promise_actions"
    PROMISE_CASE = "promise_case"
    PROMISE_DUE = "promise_due"
    NEW_MANAGER = "new_manager"
    CASE_ACTIONS = "case_actions"
    LETTER_LANGUAGE = "letter_language"
    SECTION_OPENING = "opening"
    SECTION_APOLOGY = "apology"
    SECTION_FACTS = "facts"
    SECTION_MEASURES = "measures"
    SECTION_CLOSING = "closing"
    APOLOGY_METHOD = "apology_method"
    APOLOGY_AT = "apology_at"
    ATTENDEES = "attendees"
    CLIENT_REACTION = "client_reaction"
    ROOT_CAUSE = "root_cause"
    MEASURE_ACTIONS = "measure_actions"


class Action(StrEnum):
    INPUT = "value"  # the one element inside each input block
    APPROVE = "approve"
    APPROVE_JOIN = "approve_join"
    REQUEST_CHANGES = "request_changes"
    WITHDRAW = "withdraw"
    EDIT_REPORT = "edit_report"
    PROMISE_KEEP = "promise_keep"
    PROMISE_KEEP_NEXT = "promise_keep_next"
    PROMISE_MOVE = "promise_move"
    PROMISE_CANCEL = "promise_cancel"
    PROMISE_ADD = "promise_add"
    REASSIGN = "reassign_manager"
    DRAFT_LETTER = "draft_letter"
    DRAFT_MEMORANDUM = "draft_memorandum"
    APOLOGY_DONE = "apology_done"
    PREVENTION_PLAN = "prevention_plan"
    CLOSE_CASE = "close_case"
    EXPORT_CASE = "export_case"
    MEASURE_DONE = "measure_done"
    LETTER_LANGUAGE = "letter_language"


# The reporter's buttons once the manager has approved (the apology phase, issue 5).
CASE_BUTTONS = (
    Action.DRAFT_LETTER,
    Action.DRAFT_MEMORANDUM,
    Action.APOLOGY_DONE,
    Action.PREVENTION_PLAN,
    Action.CLOSE_CASE,
    Action.EXPORT_CASE,
)

MEASURE_SLOTS = 5  # measures in the prevention-plan modal


def measure_block(n: int, part: str) -> str:
    """Block id of one part (what / owner / due) of the n-th measure in the plan modal."""
    return f"measure_{n}_{part}"


SUBCOMMANDS = ("help", "list", "status", "promise", "export")

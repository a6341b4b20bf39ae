"""The rules of Horenso, one module per part of the workflow; no Slack imports anywhere here.

Every state change of a case is a verb in this package, and only here. Verbs run inside the
caller's transaction and write, in that same transaction, the audit event and the deliveries
their decision causes (DESIGN §3).
"""

from bot.workflow.common import Outcome, Refused
from bot.workflow.reports import (
    ManagerFacts,
    ReportInput,
    check_can_request_changes,
    check_reporter,
    decide,
    next_case_number,
    resubmit_report,
    submit_report,
    validate_report,
    withdraw,
)

__all__ = [
    "ManagerFacts",
    "Outcome",
    "Refused",
    "ReportInput",
    "check_can_request_changes",
    "check_reporter",
    "decide",
    "next_case_number",
    "resubmit_report",
    "submit_report",
    "validate_report",
    "withdraw",
]

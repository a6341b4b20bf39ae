"""Delivery kinds, one module per part of the workflow; importing this registers them all.

Each renderer reads the case as it is *now*, in the recipient's language and time zone, so a
message delayed by a Slack outage never carries stale text.
"""

from bot.messages import apology, reminders, reports  # noqa: F401

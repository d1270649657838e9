"""Size limits on what policies and requests accept: the columns' sizes and sane bounds.

The forms show them as field errors; ``services`` refuses the same values from any caller, so an
oversized value is a clear error and never a database error (a 500) nor silently cut.
"""

from __future__ import annotations

from typing import Any

MAX_JUSTIFICATION = 2000
MAX_INCIDENT_REF = 100  # Elevation.incident_ref's column
MAX_PENDING_MINUTES = 7 * 24 * 60  # a request waits a week at most
MAX_GROUPS = 100  # names in one requester/approver list
MAX_GROUP_LENGTH = 200  # the array column holds 200 characters a name


def policy_problem(fields: dict[str, Any]) -> str | None:
    """What is too big in a policy's cleaned ``fields``, or None."""
    if int(fields["pending_minutes"]) > MAX_PENDING_MINUTES:
        return f"A request's lifetime is at most {MAX_PENDING_MINUTES} minutes (a week)."
    for key in ("requester_roles", "requester_groups", "approver_roles", "approver_groups"):
        if len(fields[key]) > MAX_GROUPS:
            return f"At most {MAX_GROUPS} groups or roles in one list."
        if any(len(value) > MAX_GROUP_LENGTH for value in fields[key]):
            return f"A group or role name has at most {MAX_GROUP_LENGTH} characters."
    return None


def request_problem(justification: str, incident_ref: str) -> str | None:
    """What is too big in a request's text, or None."""
    if len(justification) > MAX_JUSTIFICATION:
        return f"Keep the justification under {MAX_JUSTIFICATION} characters."
    if len(incident_ref) > MAX_INCIDENT_REF:
        return f"An incident reference has at most {MAX_INCIDENT_REF} characters."
    return None

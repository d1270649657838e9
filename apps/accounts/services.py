"""Account writes and sign-in audit events."""

from __future__ import annotations

from apps.accounts.models import User
from apps.audit.services import Actor, record


def record_sign_in(*, user: User, method: str, success: bool) -> None:
    record(
        "auth.sign_in",
        actor=Actor.for_user(user),
        target=user,
        result="success" if success else "failure",
        metadata={"method": method},
    )


def record_sign_in_failure(*, identifier: str) -> None:
    """A failed sign-in: the identifier is kept (truncated), the password never."""
    record(
        "auth.sign_in",
        actor=Actor.anonymous(identifier[:254]),
        target_type="user",
        target_id="",
        result="failure",
        metadata={"method": "password", "identifier": identifier[:254]},
    )


def record_sign_out(*, user: User) -> None:
    record("auth.sign_out", actor=Actor.for_user(user), target=user)

"""Account writes and sign-in audit events."""

from __future__ import annotations

from allauth.account.models import EmailAddress
from django.db import transaction

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


@transaction.atomic
def email_mark_verified(*, user: User) -> EmailAddress:
    """Mark the user's login address verified and primary in allauth's table.

    Only for callers that have proof of mailbox control (a signed link that
    was delivered to that address). Returns the allauth address row.
    """
    address = EmailAddress.objects.filter(user=user, email__iexact=user.email).first()
    if address is None:
        address = EmailAddress(user=user, email=user.email)
    address.verified = True
    address.primary = True
    address.save()
    EmailAddress.objects.filter(user=user, primary=True).exclude(pk=address.pk).update(primary=False)
    return address


@transaction.atomic
def password_set_from_invitation(*, user: User, password: str) -> User:
    """Set the first password of an invited person and verify their e-mail; audited.

    ``password`` must already have passed the password validators. Does not
    log the person in: sign-in (and any MFA or SSO policy) stays the only way in.
    """
    user.set_password(password)
    user.save(update_fields=["password"])
    email_mark_verified(user=user)
    record("auth.password_set", actor=Actor.for_user(user), target=user, metadata={"via": "invitation"})
    return user

"""Sign-in completion: JIT provisioning, membership activation, session marking and failure auditing.

``complete_sign_in`` turns a verified assertion into a logged-in user within
the connection's tenant only: an unseen identity is linked to a user only when
the e-mail's domain is a verified domain of that same tenant, platform staff
never sign in through a tenant's IdP, and a member an administrator removed is
not provisioned again (``REMOVED_MESSAGE``). ``SESSION_SSO_KEY`` marks the session.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import login as auth_login
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from apps.access import permsets
from apps.accounts import services as account_services
from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.audit.services import Actor, record
from apps.sso import selectors
from apps.sso.models import ExternalIdentity, SSOConnection
from apps.sso.policy import PENDING_LINK_KEY, SESSION_SSO_KEY
from apps.sso.policy import is_admin as policy_is_admin
from apps.sso.services._common import _CONTROL_RE, SUBJECT_MAX, _clean_groups, _policy
from apps.sso.services.domains import email_domain
from apps.sso.types import Assertion, SSOError
from apps.tenants.models import Membership, Tenant

MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
# SESSION_SSO_KEY: the connection a session signed in through; PENDING_LINK_KEY: an SSO link that waits
# for its account's owner to confirm by signing in with their existing way in. Defined by the policy,
# which judges open sessions by them.
PENDING_LINK_MAX_AGE = 10 * 60

# Roles (and permissions from group roles) that make a member an "admin" for the admin MFA rule.
ADMIN_ROLES = frozenset({Membership.Role.OWNER, Membership.Role.ADMIN})
ADMIN_PERMISSIONS = frozenset({"sso.manage", "member.manage", "role.manage"})

# Sign-in refusals by our own rules (audited as "denied"); every other code is a protocol failure.
DENIAL_CODES = frozenset(
    {
        "domain",
        "staff",
        "inactive",
        "membership_disabled",
        "membership_removed",
        "tenant_suspended",
        "mfa_required",
        "connection_disabled",
        "platform",
        "link_confirm",
    }
)

# --- sign-in ------------------------------------------------------------------------------------


def _full_name(assertion: Assertion) -> str:
    return " ".join(p for p in (assertion.first_name.strip(), assertion.last_name.strip()) if p)[:150]


def _is_admin(membership: Membership) -> bool:
    """Holds an administrative permission from any source: the one rule of ``apps.sso.policy.is_admin``."""
    return policy_is_admin(membership)


def _create_user(email: str, assertion: Assertion) -> tuple[User, bool]:
    """Find-or-create the user for ``email`` (a concurrent sign-in may create it first)."""
    try:
        with transaction.atomic():
            user = User.objects.create_user(email=email, full_name=_full_name(assertion))
    except IntegrityError:
        return User.objects.select_for_update().get(email__iexact=email), False
    # The tenant's IdP vouches for an address under the tenant's verified domain.
    account_services.email_mark_verified(user=user)
    return user, True


def idp_issuer(connection: SSOConnection) -> str:
    """The IdP a connection trusts today: its SAML entity ID or OIDC issuer."""
    config = connection.config or {}
    key = "idp_entity_id" if connection.kind == SSOConnection.Kind.SAML else "issuer"
    return str(config.get(key) or "")[:1024]


def identity_link_values(connection: SSOConnection) -> dict[str, Any]:
    """What a new identity link is bound to: the IdP's entity ID / issuer and the connection's trust epoch."""
    return {"idp_issuer": idp_issuer(connection), "trust_epoch": connection.trust_epoch}


def _link_is_current(identity: ExternalIdentity, connection: SSOConnection) -> bool:
    """A link counts only for the IdP it was made with: a changed IdP does not inherit it (#7, item 3)."""
    return identity.idp_issuer == idp_issuer(connection) and identity.trust_epoch == connection.trust_epoch


def _needs_confirmation(user: User, connection: SSOConnection) -> str:
    """Why linking an IdP identity to this existing account needs its owner's confirmation ('' if it does not).

    An account with its own way in (a usable password, an authenticator, an
    identity at another connection) or an Owner role anywhere is not handed
    to an IdP on the strength of an e-mail address alone: otherwise an admin
    who points the connection at their own IdP could assert ``owner@…``.
    """
    from allauth.mfa.models import Authenticator

    if user.has_usable_password():
        return "password"
    if Authenticator.objects.filter(user=user).exists():
        return "mfa"
    if ExternalIdentity.objects.filter(user=user).exclude(connection=connection).exists():
        return "other_idp"
    if Membership.objects.filter(user=user, role=Membership.Role.OWNER).exists():
        return "owner"
    return ""


def _link(connection: SSOConnection, subject: str, user: User) -> ExternalIdentity:
    # A stale link of this subject (made with an earlier IdP) is dead: the new one replaces it.
    ExternalIdentity.objects.filter(connection=connection, subject=subject).delete()
    try:
        with transaction.atomic():
            return ExternalIdentity.objects.create(
                connection=connection, subject=subject, user=user, **identity_link_values(connection)
            )
    except IntegrityError:
        # The same subject was linked by a concurrent sign-in; it must be the same person.
        identity = ExternalIdentity.objects.select_related("user").get(connection=connection, subject=subject)
        if identity.user_id != user.pk:
            raise SSOError("subject", "This identity is already linked to another account.") from None
        return identity


@dataclass
class _Provisioned:
    user: User
    membership: Membership | None
    identity: ExternalIdentity
    user_created: bool = False
    identity_created: bool = False
    membership_created: bool = False
    groups_before: list[str] = field(default_factory=list)
    groups_after: list[str] = field(default_factory=list)


def _identity_user(
    connection: SSOConnection, assertion: Assertion, *, confirmed_user_id: int | None = None
) -> tuple[User, ExternalIdentity, bool, bool]:
    """The user an assertion names: through the linked identity, else by e-mail under a verified domain.

    Linking an existing account that needs its owner's confirmation
    (``_needs_confirmation``) happens only when ``confirmed_user_id`` is that
    account: the browser is already signed in as it by its existing method.
    """
    subject = (assertion.subject or "").strip()
    if not subject or len(subject) > SUBJECT_MAX or _CONTROL_RE.search(subject):
        raise SSOError("subject", "The identity provider sent no usable subject (NameID / sub).")
    identity = (
        ExternalIdentity.objects.select_for_update(of=("self",))
        .select_related("user")
        .filter(connection=connection, subject=subject)
        .first()
    )
    if identity is not None and _link_is_current(identity, connection):
        return identity.user, identity, False, False
    email = (assertion.email or "").strip().lower()
    domain = email_domain(email)
    if not domain:
        raise SSOError("email", "The identity provider sent no usable e-mail address.")
    # The one rule that keeps tenants apart: only this connection's own verified domains link people.
    if not selectors.domain_is_verified_for(tenant=connection.tenant, domain=domain):
        owner = connection.tenant.name if connection.tenant else "the platform"
        raise SSOError("domain", f"{domain} is not a verified domain of {owner}, so this sign-in cannot be used.")
    user = User.objects.select_for_update().filter(email__iexact=email).first()
    created = False
    if user is None:
        if connection.tenant is None:
            raise SSOError("platform", "Platform sign-in only works for existing staff accounts.")
        user, created = _create_user(email, assertion)
    elif not user.is_staff or connection.tenant is None:
        reason = _needs_confirmation(user, connection)
        if reason and user.pk != confirmed_user_id:
            refusal = SSOError(
                "link_confirm",
                f"{email} already has a Bastion account with its own way in. To use "
                f"{connection.name} with it, first sign in the way you usually do (password and "
                f"second factor), then sign in with {connection.name} again from the same browser.",
            )
            refusal.user_id = user.pk  # type: ignore[attr-defined]  # for the pending-link record
            raise refusal
    identity = _link(connection, subject, user)
    return user, identity, created, True


def _provision(connection: SSOConnection, assertion: Assertion, *, confirmed_user_id: int | None) -> _Provisioned:
    """Everything a sign-in changes, inside the caller's transaction; raises SSOError to refuse."""
    if connection.status != SSOConnection.Status.ENABLED:
        raise SSOError("connection_disabled", "Sign-in through this identity provider is not enabled.")
    user, identity, user_created, identity_created = _identity_user(
        connection, assertion, confirmed_user_id=confirmed_user_id
    )
    tenant = connection.tenant
    if tenant is None:
        if not user.is_staff:
            raise SSOError("platform", "Platform sign-in only works for platform staff accounts.")
    elif user.is_staff:
        raise SSOError("staff", "Platform staff accounts cannot sign in through an organisation's identity provider.")
    if not user.is_active:
        raise SSOError("inactive", "This account is deactivated.")
    result = _Provisioned(
        user=user,
        membership=None,
        identity=identity,
        user_created=user_created,
        identity_created=identity_created,
    )
    now = timezone.now()
    suspended = False
    if tenant is not None:
        # Read fresh: a suspended tenant may still be read, but a sign-in writes nothing into it
        # (no invitation accepted, no group bindings rewritten), like every other write (#7, item 16).
        suspended = Tenant.objects.filter(pk=tenant.pk, status=Tenant.Status.SUSPENDED).exists()
        membership = Membership.objects.for_tenant(tenant).select_for_update(of=("self",)).filter(user=user).first()
        if membership is None:
            # Membership creation serialises per tenant, as every membership change does (tenants services).
            locked_tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
            if locked_tenant.is_suspended:
                raise SSOError("tenant_suspended", f"{tenant.name} is suspended; new members cannot join.")
            if selectors.was_removed(tenant=tenant, user=user):
                raise SSOError("membership_removed", REMOVED_MESSAGE.format(tenant=tenant.name))
            membership, result.membership_created = Membership.objects.get_or_create(
                tenant=tenant,
                user=user,
                defaults={"status": Membership.Status.ACTIVE, "role": Membership.Role.MEMBER, "joined_at": now},
            )
        if membership.status == Membership.Status.DISABLED:
            raise SSOError(
                "membership_disabled", f"Your access to {tenant.name} has been disabled by an administrator."
            )
        if membership.status == Membership.Status.INVITED:
            if suspended:
                raise SSOError(
                    "tenant_suspended",
                    f"{tenant.name} is suspended; invitations cannot be accepted until it is active again.",
                )
            membership.status = Membership.Status.ACTIVE
            membership.joined_at = now
            membership.save(update_fields=["status", "joined_at"])
            result.membership_created = True  # joined now: recorded as a join below
        result.groups_before = list(membership.idp_groups or [])
        result.groups_after = result.groups_before if suspended else _clean_groups(assertion.groups)
        if result.groups_before != result.groups_after:
            membership.idp_groups = result.groups_after
            membership.save(update_fields=["idp_groups"])
            # In the sign-in's transaction, before any audit record (the tenant row's lock comes
            # before the audit chain's, as in every access write).
            permsets.bump_version(tenant.pk)
            permsets.forget(membership)
        result.membership = membership
    identity.last_sign_in_at = now
    if not suspended:
        identity.last_groups = _clean_groups(assertion.groups)
    identity.save(update_fields=["last_sign_in_at", "last_groups"])
    if not user.full_name and _full_name(assertion):
        user.full_name = _full_name(assertion)
        user.save(update_fields=["full_name"])
    return result


def _sign_in_metadata(connection: SSOConnection, assertion: Assertion | None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "method": connection.kind,
        "idp": connection.name,
        "connection": str(connection.public_id),
    }
    if assertion is not None:
        meta.update(
            {
                "email": (assertion.email or "")[:254],
                "subject": (assertion.subject or "")[:SUBJECT_MAX],
                "mfa_asserted": bool(assertion.mfa_asserted),
                "authn_context": (assertion.authn_context or "")[:300],
            }
        )
    return meta


def record_sign_in_failure(*, connection: SSOConnection, error: SSOError, assertion: Assertion | None = None) -> None:
    """Audit a refused SSO sign-in on the connection's tenant chain (protocol failure or rule denial)."""
    result = AuditEvent.Result.DENIED if error.code in DENIAL_CODES else AuditEvent.Result.FAILURE
    meta = {**_sign_in_metadata(connection, assertion), "code": error.code, "reason": error.message[:500]}
    display = (assertion.email if assertion is not None else "") or ""
    with transaction.atomic():
        record(
            "auth.sign_in",
            tenant=connection.tenant,
            actor=Actor.anonymous(display[:254]),
            target=connection,
            result=result,
            metadata=meta,
        )


def _mark_session(request: HttpRequest, connection: SSOConnection, assertion: Assertion) -> None:
    """Record how this session signed in: the accounts record (policy, MFA) and which connection (logout)."""
    marker = account_services.mark_session_sign_in(
        request, method=connection.kind, idp=connection.name, mfa=bool(assertion.mfa_asserted), audit=False
    )
    # "at" ties this record to this sign-in: the session opens only this connection's tenant
    # (apps.sso.boundary), and a later sign-in by another method leaves a record that binds nothing.
    request.session[SESSION_SSO_KEY] = {
        "connection": str(connection.public_id),
        "tenant": connection.tenant_id,
        "at": marker["at"],
    }


def _confirming_user_id(request: HttpRequest, connection: SSOConnection) -> int | None:
    """The account this browser is signed in to by a way in that may confirm a new link, else None.

    A password sign-in (its second factor is enforced at sign-in), or an SSO
    sign-in through a connection of the same tenant (e.g. this connection
    before its IdP changed). A session from another tenant's IdP confirms nothing.
    """
    from apps.sso import boundary

    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not hasattr(request, "session"):
        return None
    sign_in = account_services.session_sign_in(request)
    bound = boundary.session_tenant(sign_in=sign_in, sso=request.session.get(SESSION_SSO_KEY))
    if sign_in and sign_in.get("method") == "password":
        return user.pk
    if bound is not False and bound == connection.tenant_id and bound is not None:
        return user.pk
    return None


def complete_sign_in(*, connection: SSOConnection, assertion: Assertion, request: HttpRequest) -> User:
    """Sign in the person ``assertion`` names through ``connection`` (JIT provisioning); returns the user.

    Order: linked identity (connection, subject) → else, only for an e-mail
    under a verified domain of the connection's tenant, the user with that
    e-mail (created if none) is linked. Then the membership in the
    connection's tenant (and only there) is created as "member" or activated;
    a disabled one is refused. ``Membership.idp_groups`` is replaced by the
    asserted groups, so a group removed at the IdP takes its bound roles away
    now. With ``mfa_required_admin_sso`` an admin without IdP MFA is refused.
    Then Django's login, the session's sign-in record and ``auth.sign_in``.

    Someone an administrator removed from the tenant is not added back
    (``membership_removed``) until they are invited again.

    Raises SSOError (code: subject, email, domain, staff, inactive,
    membership_disabled, membership_removed, tenant_suspended, mfa_required, connection_disabled,
    platform); every refusal is audited and nothing else is kept.
    """
    try:
        with transaction.atomic():
            done = _provision(connection, assertion, confirmed_user_id=_confirming_user_id(request, connection))
            tenant = connection.tenant
            membership = done.membership
            if tenant is not None and membership is not None:
                policy = _policy(tenant)
                if policy.mfa_required_admin_sso and not assertion.mfa_asserted and _is_admin(membership):
                    raise SSOError(
                        "mfa_required",
                        f"{tenant.name} requires administrators to use multi-factor authentication at the "
                        "identity provider. Sign in again with MFA.",
                    )
                if done.membership_created:
                    record(
                        "member.join",
                        tenant=tenant,
                        actor=Actor.for_user(done.user),
                        target=membership,
                        metadata={"role": membership.role, "via": connection.kind, "idp": connection.name},
                    )
                if done.groups_before != done.groups_after:
                    record(
                        "member.idp_groups_sync",
                        tenant=tenant,
                        actor=Actor.for_user(done.user),
                        target=membership,
                        metadata={"before": done.groups_before, "after": done.groups_after, "idp": connection.name},
                    )
            record(
                "auth.sign_in",
                tenant=tenant,
                actor=Actor.for_user(done.user),
                target=done.user,
                metadata={
                    **_sign_in_metadata(connection, assertion),
                    "user_created": done.user_created,
                    "identity_linked": done.identity_created,
                    "membership_created": done.membership_created,
                    "groups": done.groups_after[:50],
                },
            )
            auth_login(request, done.user, backend=MODEL_BACKEND)
            _mark_session(request, connection, assertion)
    except SSOError as exc:
        record_sign_in_failure(connection=connection, error=exc, assertion=assertion)
        if exc.code == "link_confirm" and hasattr(request, "session"):
            # Lets this browser's next password sign-in of that account through even where SSO is
            # otherwise demanded, once, as the confirmation (apps.accounts.adapters, middleware).
            request.session[PENDING_LINK_KEY] = {
                "user": getattr(exc, "user_id", None),
                "connection": str(connection.public_id),
                "at": time.time(),
            }
        raise
    request.session.pop(PENDING_LINK_KEY, None)
    return done.user


def pending_link_for(request: HttpRequest, user: Any) -> dict[str, Any] | None:
    """This browser's unexpired pending-link record for ``user`` (an SSO link waiting for confirmation), or None."""
    record_ = getattr(request, "session", {}).get(PENDING_LINK_KEY)
    if not isinstance(record_, dict) or user is None or record_.get("user") != getattr(user, "pk", None):
        return None
    at = record_.get("at")
    if not isinstance(at, int | float) or time.time() - at > PENDING_LINK_MAX_AGE:
        return None
    return record_


# A member an administrator removed (apps.tenants MembershipRemoval) is not provisioned again.
REMOVED_MESSAGE = "Your access to {tenant} was removed by an administrator; ask them to invite you again."

"""Bastion's own secrets that other apps hold, as rotation items (a face: it reads their selectors).

``apps.keys`` sits beside ``apps.sso`` on floor 3 and may not import it, so the
reminder task and the "Due and overdue" page (faces) ask here and hand the
items to ``apps.keys.credentials.reminders`` as plain data. More sources join
through ``KEYS_ROTATION_SOURCES`` in settings: dotted paths of functions
``(tenant: Tenant | None) -> list[DueItem]`` (None: every tenant, for the task).

Covered:

- **IdP signing certificates** of SAML connections (enabled ones, and tested
  ones on the tenant's own page): due on the certificate's ``notAfter``, listed
  from ``KEYS_CERTIFICATE_WARNING_DAYS`` before. The IdP renews them; the
  tenant's admins must upload the new one (or let the metadata URL refresh).
- **SP certificates**: Bastion's SAML service provider signs nothing and has no
  certificate today (``apps/sso/saml/sp.py``); a connection whose config ever
  carries ``sp_x509_cert``/``sp_x509_certs`` is covered the same way.
- Not covered, by design: Stripe webhook secrets come from settings
  (``STRIPE_WEBHOOK_SECRETS``) and carry no dates Bastion could read.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from django.utils.module_loading import import_string

from apps.keys.credentials.reminders import DueItem
from apps.sso import selectors as sso_selectors
from apps.tenants.models import Tenant

Source = Callable[[Tenant | None], list[DueItem]]
SHOWN_STATUSES = ("enabled", "tested")


def _warning_days() -> int:
    return int(getattr(settings, "KEYS_CERTIFICATE_WARNING_DAYS", 30))


def _connections(tenant: Tenant | None) -> list:
    if tenant is not None:
        return [c for c in sso_selectors.connection_list(tenant=tenant) if c.status in SHOWN_STATUSES]
    platform = list(sso_selectors.enabled_connections(tenant=None))
    return [*sso_selectors.enabled_tenant_connections(limit=100_000), *platform]


def certificate_items(tenant: Tenant | None) -> list[DueItem]:
    """SAML IdP (and SP, if any) certificates of ``tenant``'s connections expiring within the warning window."""
    horizon = timezone.now() + timedelta(days=_warning_days())
    items: list[DueItem] = []
    for connection in _connections(tenant):
        if connection.kind != "saml":
            continue
        config = connection.config or {}
        sp = config.get("sp_x509_certs") or ([config["sp_x509_cert"]] if config.get("sp_x509_cert") else [])
        for role, pems in (("IdP", config.get("idp_x509_certs") or []), ("SP", sp)):
            for pem in pems:
                info = sso_selectors.certificate_info(str(pem))
                if not info.readable or info.not_after is None or info.not_after > horizon:
                    continue
                slug = tenant.slug if tenant is not None else (connection.tenant.slug if connection.tenant_id else "")
                path = (
                    reverse("sso_settings:detail", kwargs={"tenant_slug": slug, "connection_id": connection.pk})
                    if slug
                    else "/platform/sso/"
                )
                items.append(
                    DueItem(
                        subject_key=f"{role.lower()}_cert:{connection.pk}:{info.sha256.replace(':', '')[:32]}",
                        label=f"{role} certificate of “{connection.name}” ({info.subject[:120]})",
                        kind=f"{role.lower()}_certificate",
                        tenant_id=connection.tenant_id,
                        due_on=info.not_after.date(),
                        path=path,
                        detail=(
                            f"The {role} signing certificate expires on {info.not_after:%Y-%m-%d %H:%M} UTC. "
                            "Get the new certificate from your identity provider and add it to the connection "
                            "(keep both during the switch)."
                        ),
                    )
                )
    return items


def sources() -> list[Source]:
    names = getattr(settings, "KEYS_ROTATION_SOURCES", None) or ["apps.keys.credentials.adapters.certificate_items"]
    return [import_string(name) for name in names]


def other_items(tenant: Tenant | None) -> list[DueItem]:
    """Every source's items for ``tenant`` (None: all tenants and the platform)."""
    return [item for source in sources() for item in source(tenant)]

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
- **Webhook signing secrets** a tenant holds in Bastion: the break-glass
  incident webhook's secret and each alert webhook endpoint's secret, due
  ``KEYS_WEBHOOK_SECRET_ROTATION_DAYS`` (365) after they were created or last
  rotated (their rows' ``created_at`` / ``rotated_at``), listed from
  ``KEYS_CERTIFICATE_WARNING_DAYS`` before.
- Not covered, by design: Stripe webhook secrets come from settings
  (``STRIPE_WEBHOOK_SECRETS``) and carry no dates Bastion could read; the
  operator rotates them with the Stripe dashboard and the setting.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from django.utils.module_loading import import_string

from apps.alerts import selectors as alert_selectors
from apps.breakglass import selectors as breakglass_selectors
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


def _webhook_days() -> int:
    return int(getattr(settings, "KEYS_WEBHOOK_SECRET_ROTATION_DAYS", 365))


def _tenants(tenant: Tenant | None) -> list[Tenant]:
    if tenant is not None:
        return [tenant]
    return list(Tenant.objects.filter(status=Tenant.Status.ACTIVE).only("pk", "slug", "name").order_by("pk"))


def webhook_secret_items(tenant: Tenant | None) -> list[DueItem]:
    """Incident and alert webhook secrets of ``tenant`` (None: every active tenant) due for rotation soon.

    Two small queries a tenant (the daily task walks the active tenants).
    """
    horizon = timezone.now().date() + timedelta(days=_warning_days())
    every = timedelta(days=_webhook_days())
    items: list[DueItem] = []
    for each in _tenants(tenant):
        found = []
        hook = breakglass_selectors.incident_webhook(tenant=each)
        if hook is not None:
            path = reverse("breakglass:incident_webhook", kwargs={"tenant_slug": each.slug})
            found.append(
                (f"incident_webhook:{hook.pk}", "Incident webhook secret", hook.rotated_at or hook.created_at, path)
            )
        for endpoint in alert_selectors.endpoint_list(tenant=each):
            path = reverse("alerts:endpoint_edit", kwargs={"tenant_slug": each.slug, "pk": endpoint.pk})
            since = endpoint.secret_rotated_at or endpoint.created_at
            found.append((f"alert_webhook:{endpoint.pk}", f"Alert webhook “{endpoint.name}” secret", since, path))
        for key, label, since, path in found:
            due = (since + every).date()
            if due <= horizon:
                items.append(
                    DueItem(
                        subject_key=key,
                        label=label,
                        kind="webhook_secret",
                        tenant_id=each.pk,
                        due_on=due,
                        path=path,
                        detail=f"Webhook signing secrets are rotated every {_webhook_days()} days; this one was "
                        f"set on {since:%Y-%m-%d}. Rotate it in Bastion and give the new secret to the other side.",
                    )
                )
    return items


def sources() -> list[Source]:
    names = getattr(settings, "KEYS_ROTATION_SOURCES", None) or [
        "apps.keys.credentials.adapters.certificate_items",
        "apps.keys.credentials.adapters.webhook_secret_items",
    ]
    return [import_string(name) for name in names]


def other_items(tenant: Tenant | None) -> list[DueItem]:
    """Every source's items for ``tenant`` (None: all tenants and the platform)."""
    return [item for source in sources() for item in source(tenant)]

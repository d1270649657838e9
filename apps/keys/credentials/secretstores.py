"""Where a credential reference points, and the few things Bastion does there: check, and write a new version.

A reference is a URI whose scheme names a store (a registry, ``KEYS_SECRET_STORES``
in settings, maps schemes to classes; add one for another backend):

- ``vault://<mount>/<path>#<field>``: a field of a HashiCorp Vault / OpenBao
  KV v2 secret (through ``hvac``). Writable.
- ``env://NAME``: an environment variable of the Bastion process. Read-only.

Tenant boundary. A tenant may reference only what the operator set aside for it
(and, with ``VAULT_TENANT_NAMESPACE``, e.g. ``tenants/{tenant}``, each tenant's
vault calls go to its own Vault Enterprise / OpenBao namespace as well):
vault paths under ``VAULT_TENANT_PATH_PREFIX`` (default ``secret/bastion/{tenant}/``,
``{tenant}`` = the slug) and environment variables named
``KEYS_ENV_REFERENCE_PREFIX`` (default ``BASTION_CRED_{TENANT}__``, the slug in
upper case with ``-`` as ``_``) followed by a name without ``__`` (which is what
keeps tenant ``a`` out of tenant ``a--b``'s variables). Paths are normalised
before the comparison: no empty, ``.`` or ``..`` segments, a small character set.

Never the value. ``check`` reports whether the reference resolved and the
secret's metadata (KV v2 ``version`` and ``created_time``); the value read to
confirm the field exists stays in a local variable. Every failure becomes a
``CheckResult`` with a status and a fixed, plain message of ours: the
exception's own text (which for hvac can carry the response body) is never
shown, logged or stored. Only the exception's class name is logged.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol

import hvac
import hvac.exceptions as errors
import requests
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.dateparse import parse_datetime
from django.utils.module_loading import import_string

from apps.keys.models import Credential
from apps.tenants.models import Tenant

logger = logging.getLogger(__name__)

Status = Credential.CheckStatus
_SEGMENT = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
_FIELD = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,199}$")
MAX_REFERENCE_LENGTH = 500


class BadReferenceError(ValueError):
    """A reference that is malformed or outside the tenant's allowed space; the message is for the user."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What a check (or a write) found: a status, a plain message, and the secret's metadata when it resolved."""

    status: str
    detail: str
    version: int | None = None
    created_time: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.status == Status.OK


class SecretStore(Protocol):
    """One backend. ``parse`` validates syntax and the tenant boundary; the rest never raises."""

    scheme: ClassVar[str]
    writable: ClassVar[bool]

    def parse(self, reference: str, *, tenant: Tenant) -> Any: ...

    def check(self, parsed: Any) -> CheckResult: ...

    def write(self, parsed: Any, value: str) -> CheckResult: ...


# --- the registry ---------------------------------------------------------------------------------


@functools.cache
def _stores() -> dict[str, SecretStore]:
    names: dict[str, str] = getattr(settings, "KEYS_SECRET_STORES", None) or {
        "vault": "apps.keys.credentials.secretstores.VaultStore",
        "env": "apps.keys.credentials.secretstores.EnvStore",
    }
    return {scheme: import_string(path)() for scheme, path in names.items()}


@receiver(setting_changed)
def _forget(*, setting: str, **kwargs: Any) -> None:
    if setting == "KEYS_SECRET_STORES":
        _stores.cache_clear()
    if setting.startswith("VAULT_"):
        _approle_token.cache_clear()


def schemes() -> list[str]:
    return sorted(_stores())


def store_for(reference: str) -> SecretStore:
    """The store of ``reference``'s scheme; BadReferenceError for an unknown or missing scheme."""
    scheme, sep, _ = reference.partition("://")
    store = _stores().get(scheme) if sep else None
    if store is None:
        raise BadReferenceError(
            "Start the reference with one of: " + ", ".join(f"{s}://" for s in schemes()) + " (e.g. vault://…#field)."
        )
    return store


def validate(reference: str, *, tenant: Tenant) -> str:
    """The reference, stripped, if it is well-formed and inside ``tenant``'s space; BadReferenceError otherwise."""
    text = (reference or "").strip()
    if not text:
        raise BadReferenceError("Enter a reference, e.g. vault://secret/bastion/<tenant>/openai#api_key.")
    if len(text) > MAX_REFERENCE_LENGTH or any(ch.isspace() or ord(ch) < 32 for ch in text):
        raise BadReferenceError(f"A reference is at most {MAX_REFERENCE_LENGTH} characters, without spaces.")
    store_for(text).parse(text, tenant=tenant)
    return text


def is_writable(reference: str) -> bool:
    try:
        return store_for(reference).writable
    except BadReferenceError:
        return False


def check(reference: str, *, tenant: Tenant) -> CheckResult:
    """Resolve ``reference`` for ``tenant`` server-side: status and metadata, never the value."""
    try:
        store = store_for(reference)
        parsed = store.parse(reference, tenant=tenant)
    except BadReferenceError as exc:
        return CheckResult(Status.INVALID, str(exc))
    return store.check(parsed)


def write(reference: str, *, tenant: Tenant, value: str) -> CheckResult:
    """Write ``value`` as the referenced secret's new version (stores that are writable only)."""
    try:
        store = store_for(reference)
        parsed = store.parse(reference, tenant=tenant)
    except BadReferenceError as exc:
        return CheckResult(Status.INVALID, str(exc))
    if not store.writable:
        return CheckResult(Status.ERROR, f"{store.scheme}:// references are read-only: rotate there and record it.")
    return store.write(parsed, value)


# --- env:// -------------------------------------------------------------------------------------


def env_prefix(tenant: Tenant) -> str:
    template = getattr(settings, "KEYS_ENV_REFERENCE_PREFIX", "BASTION_CRED_{TENANT}__")
    return template.format(TENANT=tenant.slug.upper().replace("-", "_"), tenant=tenant.slug)


class EnvStore:
    """``env://NAME``: an environment variable of the Bastion process (read-only)."""

    scheme: ClassVar[str] = "env"
    writable: ClassVar[bool] = False

    def parse(self, reference: str, *, tenant: Tenant) -> str:
        name = reference.removeprefix("env://")
        prefix = env_prefix(tenant)
        rest = name[len(prefix) :] if name.startswith(prefix) else None
        if not _ENV_NAME.match(name) or not rest or "__" in rest:
            raise BadReferenceError(
                f"This organisation may reference environment variables named {prefix}<NAME> "
                "(capital letters, digits and single underscores)."
            )
        return name

    def check(self, parsed: str) -> CheckResult:
        if os.environ.get(parsed):
            return CheckResult(Status.OK, "The variable is set (environment variables carry no version).")
        return CheckResult(Status.NOT_FOUND, "The variable is not set in Bastion's environment.")

    def write(self, parsed: str, value: str) -> CheckResult:  # pragma: no cover - never writable
        return CheckResult(Status.ERROR, "env:// references are read-only.")


# --- vault:// (HashiCorp Vault / OpenBao, KV v2) ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class VaultRef:
    mount: str
    path: str
    field: str
    namespace: str = ""


def vault_prefix(tenant: Tenant) -> str:
    template = getattr(settings, "VAULT_TENANT_PATH_PREFIX", "secret/bastion/{tenant}/")
    return template.format(tenant=tenant.slug, TENANT=tenant.slug.upper())


def vault_namespace(tenant: Tenant) -> str:
    """The namespace ``tenant``'s references live in: VAULT_NAMESPACE, then VAULT_TENANT_NAMESPACE under it."""
    base = (getattr(settings, "VAULT_NAMESPACE", "") or "").strip("/")
    template = getattr(settings, "VAULT_TENANT_NAMESPACE", "") or ""
    own = template.format(tenant=tenant.slug).strip("/") if template else ""
    return "/".join(part for part in (base, own) if part)


def _configured() -> bool:
    return bool(getattr(settings, "VAULT_ADDR", ""))


@functools.cache
def _approle_token() -> tuple[str, float]:
    """An AppRole login's token and when to log in again (cached per process, renewed at 80 % of its TTL)."""
    client = hvac.Client(url=settings.VAULT_ADDR, namespace=settings.VAULT_NAMESPACE or None, **_tls())
    auth = client.auth.approle.login(
        role_id=settings.VAULT_ROLE_ID,
        secret_id=settings.VAULT_SECRET_ID,
        mount_point=getattr(settings, "VAULT_APPROLE_MOUNT", "approle"),
    )["auth"]
    return auth["client_token"], time.monotonic() + 0.8 * float(auth.get("lease_duration") or 300)


_approle_lock = threading.Lock()


def _token() -> str:
    if getattr(settings, "VAULT_TOKEN", ""):
        return settings.VAULT_TOKEN
    if getattr(settings, "VAULT_ROLE_ID", "") and getattr(settings, "VAULT_SECRET_ID", ""):
        with _approle_lock:
            token, renew_at = _approle_token()
            if time.monotonic() >= renew_at:
                _approle_token.cache_clear()
                token, _ = _approle_token()
        return token
    return ""


def _tls() -> dict[str, Any]:
    cacert = getattr(settings, "VAULT_CACERT", "")
    return {"verify": cacert or True, "timeout": getattr(settings, "VAULT_TIMEOUT", 5)}


def _client(namespace: str = "") -> Any:
    return hvac.Client(url=settings.VAULT_ADDR, token=_token(), namespace=namespace or None, **_tls())


def _failure(exc: BaseException, *, writing: bool = False) -> CheckResult:
    """A plain status for an hvac or network failure: our own words, never the exception's text."""
    logger.warning("vault %s failed: %s", "write" if writing else "read", type(exc).__name__)
    if isinstance(exc, errors.InvalidPath):
        return CheckResult(Status.NOT_FOUND, "No secret at that path (or the mount is not a KV v2 engine).")
    if isinstance(exc, errors.Forbidden | errors.Unauthorized):
        return CheckResult(
            Status.DENIED, "Bastion's vault token may not " + ("write" if writing else "read") + " that path."
        )
    if isinstance(exc, errors.VaultDown):
        return CheckResult(Status.SEALED, "The vault is sealed: unseal it, then check again.")
    if isinstance(exc, errors.InvalidRequest) and writing:
        return CheckResult(Status.ERROR, "The vault refused the write (the secret changed meanwhile? check again).")
    if isinstance(exc, requests.exceptions.SSLError):
        return CheckResult(
            Status.UNREACHABLE,
            "Bastion could not verify the vault's TLS certificate (set VAULT_CACERT to its CA bundle).",
        )
    if isinstance(
        exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema | requests.exceptions.InvalidSchema
    ):
        return CheckResult(Status.NOT_CONFIGURED, "VAULT_ADDR is not a valid URL (e.g. https://vault.example:8200).")
    if isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
        return CheckResult(Status.UNREACHABLE, "Bastion cannot reach the vault at VAULT_ADDR.")
    return CheckResult(Status.ERROR, "The vault answered with an error Bastion did not expect.")


def _created(metadata: dict[str, Any]) -> datetime | None:
    value = metadata.get("created_time")
    return parse_datetime(value) if isinstance(value, str) else None


def _current_version(kv: Any, parsed: VaultRef) -> int:
    """The secret's current version from its metadata (0 when there is no secret at all)."""
    try:
        metadata = kv.read_secret_metadata(path=parsed.path, mount_point=parsed.mount)["data"]
    except errors.InvalidPath:
        return 0
    return int(metadata.get("current_version") or 0)


class VaultStore:
    """``vault://<mount>/<path>#<field>``: one field of a KV v2 secret."""

    scheme: ClassVar[str] = "vault"
    writable: ClassVar[bool] = True

    def parse(self, reference: str, *, tenant: Tenant) -> VaultRef:
        location, sep, field = reference.removeprefix("vault://").partition("#")
        segments = location.split("/")
        if not sep or not _FIELD.match(field):
            raise BadReferenceError("Name the field after a #, e.g. vault://secret/bastion/acme/openai#api_key.")
        if len(segments) < 2 or any(not _SEGMENT.match(s) or s in {".", ".."} for s in segments):
            raise BadReferenceError(
                "A vault reference is vault://<mount>/<path>#<field>: path segments of letters, digits, "
                "'.', '_' or '-', separated by single slashes (no '..')."
            )
        prefix = vault_prefix(tenant)
        if not (location + "/").startswith(prefix) or location + "/" == prefix:
            raise BadReferenceError(f"This organisation may reference vault secrets under {prefix} only.")
        return VaultRef(mount=segments[0], path="/".join(segments[1:]), field=field, namespace=vault_namespace(tenant))

    def check(self, parsed: VaultRef) -> CheckResult:
        if not _configured():
            return CheckResult(Status.NOT_CONFIGURED, "No vault is configured (VAULT_ADDR is not set).")
        try:
            response = _client(parsed.namespace).secrets.kv.v2.read_secret_version(
                path=parsed.path, mount_point=parsed.mount, raise_on_deleted_version=True
            )
            data = response["data"]
            has_field = parsed.field in (data.get("data") or {})
            metadata = data.get("metadata") or {}
            del response, data  # the values are not needed past this line
        except Exception as exc:  # noqa: BLE001 - every failure becomes a status; none may reach a page or a log
            return _failure(exc)
        version, created = metadata.get("version"), _created(metadata)
        if not has_field:
            return CheckResult(
                Status.NOT_FOUND, f"The secret exists but has no field “{parsed.field}”.", version, created
            )
        return CheckResult(Status.OK, "Resolved.", version, created)

    def write(self, parsed: VaultRef, value: str) -> CheckResult:
        if not _configured():
            return CheckResult(Status.NOT_CONFIGURED, "No vault is configured (VAULT_ADDR is not set).")
        try:
            kv = _client(parsed.namespace).secrets.kv.v2
            try:
                current = kv.read_secret_version(
                    path=parsed.path, mount_point=parsed.mount, raise_on_deleted_version=True
                )["data"]
                fields, cas = {**(current.get("data") or {}), parsed.field: value}, current["metadata"]["version"]
                del current
            except errors.InvalidPath:
                # No readable version: either no secret there yet (create it, refusing to overwrite one
                # created meanwhile: cas=0), or its latest version was deleted or destroyed (write the
                # next one on top of it; the deleted fields cannot be kept).
                fields, cas = {parsed.field: value}, _current_version(kv, parsed)
            # Check-and-set: every field kept, this one replaced; a concurrent writer makes ours fail
            # instead of one silently losing the other's change.
            response = kv.create_or_update_secret(path=parsed.path, secret=fields, cas=cas, mount_point=parsed.mount)
            del fields
            metadata = response.get("data") or {}
        except Exception as exc:  # noqa: BLE001 - as in check(): a status, never the exception's text
            return _failure(exc, writing=True)
        return CheckResult(Status.OK, "New version written.", metadata.get("version"), _created(metadata))

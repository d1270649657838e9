"""The audit HMAC key never reaches PostgreSQL (issue #7, item 1), attacked from the database's side.

The attacker reads everything the database is sent (``pg_stat_activity``,
statement and error logs): every statement text and parameter of record(),
seal_chains(), retention_purge() and verification. Nothing in it may be the
key, its HMAC pads, a derived key or its pads, as bytes or as hex; and no value
seen there may serve as a key that reproduces a real chain link.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.audit import chain
from apps.audit.models import AuditChainHead, AuditEvent
from apps.audit.services import Actor, record, retention_purge, seal_chains
from apps.audit.verification import verify_chain

BLOCK = 64


def _pads(key: bytes) -> tuple[bytes, bytes]:
    if len(key) > BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def secret_material() -> dict[str, bytes]:
    """Every byte string from which an attacker could compute links or seals."""
    raw = settings.AUDIT_HMAC_KEY.encode()
    found = {"key": raw}
    for name, key in (("raw", raw), ("link", chain.link_key()), ("seal", chain.seal_key())):
        found[f"{name}-key"] = key
        ipad, opad = _pads(key)
        found[f"{name}-ipad"], found[f"{name}-opad"] = ipad, opad
    return found


class Wiretap:
    """Everything sent to the database: statement texts (as sent) and every parameter."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.params: list[Any] = []

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        self.statements.append(sql)
        if params:
            values = params.values() if isinstance(params, dict) else params
            for value in values:
                if many:
                    self.params.extend(value if isinstance(value, list | tuple) else [value])
                else:
                    self.params.append(value)
        return execute(sql, params, many, context)


@contextmanager
def wiretap() -> Iterator[tuple[Wiretap, CaptureQueriesContext]]:
    tap = Wiretap()
    with CaptureQueriesContext(connection) as captured, connection.execute_wrapper(tap):
        yield tap, captured


def _forms(secret: bytes) -> list[bytes]:
    """How a secret can appear in SQL text or parameters: bytes, hex (both cases), base64, bytea literal."""
    hexed = secret.hex()
    return [
        secret,
        hexed.encode(),
        hexed.upper().encode(),
        base64.b64encode(secret),
        base64.urlsafe_b64encode(secret),
        f"\\x{hexed}".encode(),
    ]


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode("utf-8", "replace")


def _everything_the_database_saw(cast: Any) -> tuple[Wiretap, CaptureQueriesContext]:
    with wiretap() as (tap, captured):
        actor = Actor.for_user(cast.owner)
        for index in range(5):
            record("member.invite", tenant=cast.acme, actor=actor, target_type="membership", target_id=index)
        record("platform.tenant_create", metadata={"slug": "acme"})
        record("member.invite", tenant=cast.globex, actor=actor, metadata={"email": "x@globex.example"})
        seal_chains()
        retention_purge(chain=cast.globex.pk, older_than=timezone.now(), by=actor)
        assert verify_chain(cast.acme.pk).ok
        assert verify_chain(cast.globex.pk).ok
    return tap, captured


def test_no_key_material_in_any_statement_or_parameter(cast):
    tap, captured = _everything_the_database_saw(cast)
    sent_texts = [query["sql"].encode() for query in captured.captured_queries]  # as sent (client-side binding)
    sent_texts += [statement.encode() for statement in tap.statements]
    sent_params = [_as_bytes(value) for value in tap.params]
    assert len(sent_texts) > 20
    assert sent_params
    for name, secret in secret_material().items():
        for form in _forms(secret):
            for text in sent_texts + sent_params:
                assert form not in text, f"{name} reached the database"


def test_no_value_the_database_saw_reproduces_a_link(cast):
    """The attacker tries every value as the key and every pair of 64-byte values as the HMAC pads."""
    tap, _captured = _everything_the_database_saw(cast)
    event = AuditEvent.objects.filter(chain=cast.acme.pk).order_by("-seq").first()
    message = bytes(event.prev_hash) + chain.payload_of(event)
    target = bytes(event.hash)
    values = {_as_bytes(value) for value in tap.params if value is not None}
    for value in values:
        assert hmac.new(value, message, hashlib.sha256).digest() != target
    blocks = [value for value in values if len(value) == BLOCK]
    for inner in blocks:
        for outer in blocks:
            assert hashlib.sha256(outer + hashlib.sha256(inner + message).digest()).digest() != target


def test_a_row_forged_with_database_access_alone_is_detected(cast, chain_of):
    """The application role may insert rows; without the key, the forged link does not verify."""
    chain_of(3)
    head = AuditChainHead.objects.get(chain=cast.acme.pk)
    forged = {
        "chain": cast.acme.pk,
        "occurred_at": timezone.now(),
        "tenant_id": cast.acme.pk,
        "actor_type": "user",
        "actor_id": str(cast.owner.pk),
        "actor_display": cast.owner.email,
        "action": "member.role_change",
        "target_type": "membership",
        "target_id": "999",
        "result": "success",
        "ip": None,
        "user_agent": "",
        "request_id": "",
        "metadata": {"role": "owner"},
    }
    payload = chain.payload(**forged)
    # The best guess without the key: an HMAC under SECRET_KEY or under the bare hash.
    guess = hmac.new(settings.SECRET_KEY.encode(), bytes(head.head_hash) + payload, hashlib.sha256).digest()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO audit_auditevent (chain, seq, occurred_at, tenant_id, actor_type, actor_id, actor_display, "
            "action, target_type, target_id, result, ip, user_agent, request_id, metadata, prev_hash, hash) "
            'VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, \'{"role": "owner"}\'::jsonb, %s, %s) '
            "RETURNING id",
            [cast.acme.pk, head.seq + 1, *list(forged.values())[1:-1], bytes(head.head_hash), guess],
        )
        (forged_id,) = cursor.fetchone()
    problem = verify_chain(cast.acme.pk).problem
    assert problem is not None
    assert (problem.kind, problem.event_id) == ("edited", forged_id)


# --- keys for different purposes never coincide ----------------------------------------------


def _sso_keys() -> list[bytes]:
    from apps.sso import crypto

    return [base64.urlsafe_b64decode(key) for key in crypto._keys()]


def _django_derived(secret: str) -> list[bytes]:
    # django.utils.crypto.salted_hmac derives sha256(key_salt + secret) per use.
    salts = [
        "django.contrib.auth.tokens.PasswordResetTokenGenerator",
        "django.core.signing.Signer",
        "django.contrib.sessions.backends.base.SessionBase",
    ]
    return [hashlib.sha256((salt + secret).encode()).digest() for salt in salts]


@pytest.mark.parametrize("shared", [False, True])
def test_keys_derived_for_different_purposes_differ(settings, shared):
    """Even when an operator reuses one secret everywhere, every purpose gets its own key."""
    if shared:
        settings.AUDIT_HMAC_KEY = settings.SSO_SECRET_KEY = settings.SECRET_KEY
    else:
        settings.SSO_SECRET_KEY = "a-separate-sso-secret-0123456789abcdef"
    # The SSO purpose may hold the same key twice (its own setting and its SECRET_KEY fallback); one purpose.
    keys = {
        "audit link": chain.link_key(),
        "audit seal": chain.seal_key(),
        **{f"sso {i}": key for i, key in enumerate(sorted(set(_sso_keys())))},
        **{f"django {i}": key for i, key in enumerate(_django_derived(settings.SECRET_KEY))},
    }
    raw = {
        settings.SECRET_KEY.encode(),
        settings.AUDIT_HMAC_KEY.encode(),
        (settings.SSO_SECRET_KEY or "").encode(),
    }
    assert len(set(keys.values())) == len(keys), keys
    assert not raw & set(keys.values())
    assert all(len(key) == 32 for name, key in keys.items() if name.startswith("audit"))


def test_the_audit_key_is_required(settings):
    settings.AUDIT_HMAC_KEY = ""
    with pytest.raises(Exception, match="AUDIT_HMAC_KEY"):
        chain.link_key()

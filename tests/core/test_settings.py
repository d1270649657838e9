"""Production settings refuse to start without their environment and pass ``check --deploy``;
environment booleans are parsed strictly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.settings.env import env_bool, env_secret

ROOT = Path(__file__).resolve().parents[2]
GOOD_SECRET = "k" * 20 + "-production-secret-key-for-the-deploy-check-0123456789"
PRODUCTION_ENV = {
    "SECRET_KEY": GOOD_SECRET,
    "DATABASE_URL": "postgres://bastion@db.internal:5432/bastion",
    "CELERY_BROKER_URL": "redis://redis.internal:6379/0",
    "ALLOWED_HOSTS": "bastion.example.com",
    "AUDIT_HMAC_KEY": "a-separate-audit-chain-key-0123456789abcdef",
}
# Variables the parent environment may carry that would change what production sees.
_SCRUB = {
    *PRODUCTION_ENV,
    "DEBUG",
    "SECRET_KEY_FILE",
    "AUDIT_HMAC_KEY",
    "AUDIT_HMAC_KEY_FILE",
    "SSO_SECRET_KEY",
    "SSO_SECRET_KEY_FILE",
    "DJANGO_SETTINGS_MODULE",
    "DJANGO_ALLOW_ASYNC_UNSAFE",  # make test sets it for Playwright; check --deploy rightly refuses it
}


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    child_env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
    child_env.update(DJANGO_SETTINGS_MODULE="config.settings.production", **env)
    return subprocess.run(  # noqa: S603 (fixed argv: this interpreter and manage.py)
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_deploy_is_clean_with_required_environment():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_secret_key():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "SECRET_KEY"}
    result = manage("check", **env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "Production settings need these environment variables: SECRET_KEY" in result.stderr


def test_production_names_every_missing_variable():
    result = manage("check")
    assert result.returncode != 0
    assert "SECRET_KEY, DATABASE_URL, CELERY_BROKER_URL, ALLOWED_HOSTS" in result.stderr


def test_production_refuses_a_short_secret_key():
    result = manage("check", **{**PRODUCTION_ENV, "SECRET_KEY": "too-short"})
    assert result.returncode != 0
    assert "SECRET_KEY must be at least 50 characters" in result.stderr
    assert "too-short" not in result.stderr  # the value itself is never echoed


def test_production_refuses_to_start_without_a_separate_audit_key():
    """The audit key must never fall back to SECRET_KEY (issue #7, item 1)."""
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "AUDIT_HMAC_KEY"}
    result = manage("check", **env)
    assert result.returncode != 0
    assert "Production settings need AUDIT_HMAC_KEY" in result.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"AUDIT_HMAC_KEY": GOOD_SECRET}, "AUDIT_HMAC_KEY must differ from SECRET_KEY"),
        (
            {"SSO_SECRET_KEY": PRODUCTION_ENV["AUDIT_HMAC_KEY"]},
            "AUDIT_HMAC_KEY must differ from SSO_SECRET_KEY",
        ),
        ({"AUDIT_HMAC_KEY": "short-audit-key"}, "AUDIT_HMAC_KEY must be at least 32 characters"),
    ],
)
def test_production_refuses_a_reused_or_weak_audit_key(extra, message):
    result = manage("check", **{**PRODUCTION_ENV, **extra})
    assert result.returncode != 0
    assert message in result.stderr
    for value in extra.values():
        assert value not in result.stderr  # the value itself is never echoed


def test_production_reads_secret_from_file_and_rejects_bad_boolean(tmp_path):
    secret_file = tmp_path / "secret_key"
    secret_file.write_text(GOOD_SECRET + "\n")
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "SECRET_KEY"}
    ok = manage("check", "--deploy", "--fail-level", "WARNING", SECRET_KEY_FILE=str(secret_file), **env)
    assert ok.returncode == 0, ok.stdout + ok.stderr

    bad = manage("check", DEBUG="maybe", **PRODUCTION_ENV)
    assert bad.returncode != 0
    assert "DEBUG must be one of" in bad.stderr


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        ("TRUE", True),
        (" yes ", True),
        ("on", True),
        ("0", False),
        ("false", False),
        ("No", False),
        ("off", False),
        ("", False),
    ],
)
def test_env_bool_known_spellings(monkeypatch, raw, expected):
    monkeypatch.setenv("BASTION_TEST_FLAG", raw)
    assert env_bool("BASTION_TEST_FLAG", not expected) is expected


@pytest.mark.parametrize("raw", ["maybe", "2", "ture", "y", "enabled", "-1"])
def test_env_bool_rejects_anything_else(monkeypatch, raw):
    monkeypatch.setenv("BASTION_TEST_FLAG", raw)
    with pytest.raises(ImproperlyConfigured, match="BASTION_TEST_FLAG must be one of"):
        env_bool("BASTION_TEST_FLAG", False)


def test_env_bool_default_when_unset(monkeypatch):
    monkeypatch.delenv("BASTION_TEST_FLAG", raising=False)
    assert env_bool("BASTION_TEST_FLAG", True) is True
    assert env_bool("BASTION_TEST_FLAG", False) is False


def test_env_secret_prefers_file(monkeypatch, tmp_path):
    path = tmp_path / "token"
    path.write_text("  from-file\n")
    monkeypatch.setenv("BASTION_TEST_SECRET", "from-env")
    assert env_secret("BASTION_TEST_SECRET") == "from-env"
    monkeypatch.setenv("BASTION_TEST_SECRET_FILE", str(path))
    assert env_secret("BASTION_TEST_SECRET") == "from-file"

"""The keys app's settings, each with its default (override any in config/settings)."""

from __future__ import annotations

from django.conf import settings


def issuer() -> str:
    """``iss`` of every access token and the authorization server's identifier."""
    return getattr(settings, "KEYS_TOKEN_ISSUER", "") or settings.SITE_URL.rstrip("/")


def default_audience() -> str:
    """The runtime API's audience: what a token is for when the client names none."""
    return getattr(settings, "KEYS_API_AUDIENCE", "") or issuer() + "/api/v1"


def rotation_days() -> int:
    """How long a signing key signs before the next one takes over."""
    return int(getattr(settings, "KEYS_SIGNING_KEY_ROTATION_DAYS", 30))


def publish_ahead_hours() -> int:
    """How long a next key is in the JWKS before it signs (far longer than the JWKS cache lifetime)."""
    return int(getattr(settings, "KEYS_SIGNING_KEY_PUBLISH_AHEAD_HOURS", 48))


def secret_overlap_hours() -> int:
    """Default overlap of a rotated client secret: the old one works this long alongside the new."""
    return int(getattr(settings, "KEYS_SECRET_OVERLAP_HOURS", 24))


def failure_rates() -> tuple[str, str]:
    """django-ratelimit rates for failed client authentication: (per client id, per IP)."""
    return (
        getattr(settings, "KEYS_TOKEN_FAILURE_RATE_PER_CLIENT", "10/m"),
        getattr(settings, "KEYS_TOKEN_FAILURE_RATE_PER_IP", "30/m"),
    )


JWKS_MAX_AGE = 300  # seconds; publish_ahead_hours is far longer, so caches see a next key before it signs
CLOCK_LEEWAY = 30  # seconds of clock skew accepted on iat (never on exp)

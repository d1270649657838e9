"""Billing errors shared by intake, processing and the provider handlers."""

from __future__ import annotations


class WebhookRejectedError(Exception):
    """The request is not a verified, well-formed event: answer 400, store nothing."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BillingError(Exception):
    """A handler could not apply the event yet (retried with backoff)."""


class TenantMismatchError(Exception):
    """The event names a tenant that does not own the Stripe customer: refused, audited, never retried."""

    def __init__(self, message: str, *, owner_id: int | None = None, claimed: str = "", customer_id: str = "") -> None:
        super().__init__(message)
        self.owner_id, self.claimed, self.customer_id = owner_id, claimed, customer_id

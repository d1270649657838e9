"""Billing: Stripe webhook intake and processing, customer mapping, subscription mirror (floor 3).

Public functions, for faces and other apps:

- ``apps.billing.services``: ``stripe_webhook_receive`` (the view's one call:
  verify, store, enqueue), ``webhook_process`` (the task's step),
  ``webhooks_sweep`` (the beat sweeper's step), ``webhook_replay`` (staff),
  raising ``WebhookRejectedError`` / ``BillingError``.
- ``apps.billing.selectors`` for the console's reads.
"""

"""Billing: payment webhook intake and processing (Stripe, Adyen), customer mapping, subscription mirror (floor 3).

Public functions, for faces and other apps:

- ``apps.billing.services``: ``webhook_receive`` (the webhook views' one call, any
  provider: verify, store, enqueue; ``stripe_webhook_receive`` for Stripe),
  ``webhook_process`` / ``webhooks_process_batch`` (the tasks' steps),
  ``webhooks_sweep`` (the beat sweeper's step), ``webhook_replay`` (staff),
  raising ``WebhookRejectedError`` / ``BillingError``.
- ``apps.billing.providers``: the payment-provider interface (Stripe, Adyen): ``get(name)``.
- ``apps.billing.selectors`` for the console's reads.
"""

"""Console pages of the alerts app: ``console`` (alerts, rules, webhooks, delivery log), ``fraud`` (review queue)."""

"""The quarterly runbook and retention jobs (floor 4: reads keys, access, audit and billing).

- **Runbook**: at the start of each quarter a beat task opens, per active tenant,
  one runbook (unique per tenant and quarter) with three checklists — rotate
  (credentials due this quarter, from ``apps.keys.credentials.selectors.credentials_due``),
  restore drill (the latest platform :class:`~apps.runbook.models.DrillResult`) and
  the denied-access drift review (denied checks since the last review by subject
  and action, role and binding changes, members without a sign-in for 90 days).
  Every line is marked "expected" or "fix"; an Owner signs the runbook off.
- **Restore drill** (``apps.runbook.drill``): ``pg_dump`` → ``pg_restore`` into a
  scratch database → audit chain verification and a row count of every table
  against the same snapshot → a DrillResult; the scratch database is dropped.
- **Retention** (``apps.runbook.retention``): per-tenant retention of audit
  events (never below the platform floor), denied decisions and usage detail,
  purged daily in small batches, each its own transaction.

Public functions, for faces: ``services`` (runbook writes), ``selectors`` (reads),
``drill.drill_request`` / ``drill.drill_run``, ``retention.policy_update`` /
``retention.purge_all`` / ``retention.purge_tenant``; each raises ``RunbookError``
(or a subclass) with a message meant for the user.
"""

"""Provider credentials: references to secrets in a vault, their rotation schedule and reminders (#13).

Domain modules: ``secretstores`` (where a reference points and how to read its
metadata or write a new version), ``selectors`` (reads), ``services`` (writes,
each audited), ``reminders`` (the reminder claim and delivery). Faces:
``views``, ``forms``, ``urls`` and ``sources`` (what other apps contribute to
"Due and overdue": SSO certificates; a face, so it may read their selectors).

Public, for other apps (the quarterly runbook):
``apps.keys.credentials.selectors.credentials_due(tenant, start, end)``.
"""

"""Writes of the alerts app, one module per concern.

- ``rules``: alert rules, webhook endpoints (create, update, rotate, delete) and the fraud policy;
- ``lifecycle``: acknowledge and resolve alerts;
- ``evaluation``: evaluate a tenant's rules (the beat task's work);
- ``fraud``: screen a tenant's usage for fraud signals; assign, dismiss, confirm cases;
- ``raising``: open alerts and cases, de-duplicated while open, and queue their deliveries;
- ``delivery``: send one delivery (claim, send, log, back off, fail), and send a failed one again.
"""

"""Events other apps may react to, without ``tenants`` importing them (it sits below them).

``status_changed`` is sent inside the transaction that suspends or reactivates a tenant, with
``tenant`` (the locked row, new status saved) and ``suspended`` (the new state). ``access``
listens to publish a new access version, so warm runtime-API processes see the change on the
next call, whoever made it (platform staff, billing's dunning).
"""

from __future__ import annotations

from django.dispatch import Signal

status_changed = Signal()

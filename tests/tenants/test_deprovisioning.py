"""Deprovisioning a membership signs the person out everywhere (after the change commits)."""

from __future__ import annotations

import pytest
from django.contrib.sessions.models import Session

from apps.audit.models import AuditEvent
from apps.tenants import services
from apps.tenants.models import Membership

pytestmark = pytest.mark.django_db


def _sessions_of(user) -> int:
    return sum(1 for s in Session.objects.all() if s.get_decoded().get("_auth_user_id") == str(user.pk))


@pytest.mark.parametrize("how", ["disable", "remove"])
def test_deprovisioned_member_loses_every_session(cast, client_for, django_capture_on_commit_callbacks, how) -> None:
    client = client_for(cast.member)
    assert client.get("/t/acme/").status_code == 200
    assert _sessions_of(cast.member) == 1
    membership = Membership.objects.for_tenant(cast.acme).get(user=cast.member)
    with django_capture_on_commit_callbacks(execute=True):
        if how == "disable":
            services.membership_set_disabled(membership=membership, disabled=True, actor=cast.owner)
        else:
            services.membership_remove(membership=membership, actor=cast.owner)
    assert _sessions_of(cast.member) == 0
    assert client.get("/t/acme/").status_code == 302  # back to sign-in
    assert AuditEvent.objects.filter(action="auth.sign_out_everywhere", actor_id=str(cast.owner.pk)).exists()

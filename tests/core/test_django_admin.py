"""The Django admin: off unless ADMIN_ENABLED, and then for superusers only."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import RequestFactory

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_admin_is_not_mounted_by_default(client) -> None:
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    assert client.get("/django-admin/").status_code == 404


@pytest.mark.parametrize(
    ("staff", "superuser", "allowed"), [(True, False, False), (False, False, False), (True, True, True)]
)
def test_only_superusers_may_use_the_admin(staff: bool, superuser: bool, allowed: bool) -> None:
    request = RequestFactory().get("/django-admin/")
    request.user = UserFactory(is_staff=staff, is_superuser=superuser)
    assert admin.site.has_permission(request) is allowed

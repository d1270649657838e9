"""Dashboard cards named in settings appear on the dashboard, attention first; a bad name fails loudly."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse

from apps.tenants.dashboard import Card, card_functions

pytestmark = pytest.mark.django_db


def quiet_card(request):
    return Card(template="tests/card.html", context={"title": "Quiet card"})


def urgent_card(request):
    return Card(template="tests/card.html", context={"title": "Urgent card"}, attention=True)


def hidden_card(request):
    return None


CARDS = [f"{__name__}.quiet_card", f"{__name__}.hidden_card", f"{__name__}.urgent_card"]


def test_cards_render_attention_first(cast, client_for, settings, tmp_path):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "card.html").write_text('<section class="card"><h2>{{ card.title }}</h2></section>')
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [tmp_path, *settings.TEMPLATES[0]["DIRS"]]}]
    settings.TENANT_DASHBOARD_CARDS = CARDS
    page = client_for(cast.member).get(reverse("tenants:dashboard", kwargs={"tenant_slug": "acme"})).content.decode()
    assert "Urgent card" in page
    assert "Quiet card" in page
    assert page.index("Urgent card") < page.index("Quiet card")


def test_unknown_card_is_a_configuration_error(settings):
    settings.TENANT_DASHBOARD_CARDS = ["apps.nowhere.dashboard.card"]
    with pytest.raises(ImproperlyConfigured):
        card_functions()

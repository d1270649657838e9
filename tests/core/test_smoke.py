import pytest

pytestmark = pytest.mark.django_db


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_dashboard_for_member(cast, client_for):
    response = client_for(cast.member).get("/t/acme/")
    assert response.status_code == 200


def test_outsider_gets_404(cast, client_for):
    assert client_for(cast.outsider).get("/t/acme/").status_code == 404

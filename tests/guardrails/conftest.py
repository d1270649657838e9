from tests.catalog.fixtures import memberships, rows  # noqa: F401 - fixtures

from __future__ import annotations

import pytest
from django.core.cache import cache

from tests.keys.helpers import reset_caches


@pytest.fixture(autouse=True)
def _fresh_key_caches() -> None:
    # The signing keys and clients live in the test's database; caches from another test's must go.
    cache.clear()
    reset_caches()
    yield
    cache.clear()
    reset_caches()


# The real OpenBao dev server of the provider-credential tests (#13).
from tests.keys.openbao import openbao, sealed_openbao, vault  # noqa: E402, F401

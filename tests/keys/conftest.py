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

"""Browser tests: headless Chromium (Debian's, never a downloaded build) driven by Playwright.

The ``browser`` and ``screenshot_dir`` fixtures live in ``tests/conftest.py``, so the browser tests
of every app share one session-wide Playwright per test process (a second sync Playwright in the
same process fails with "Sync API inside the asyncio loop"). Helpers are in ``tests/e2e/helpers.py``.
"""

"""What the browser tests share: a signed-in browser context and full-page screenshots."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.test import Client


def signed_in_context(browser, live_server, user):
    """A browser context carrying a session of ``user`` (no password round trip)."""
    client = Client()
    client.force_login(user)
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                "url": live_server.url,
            }
        ]
    )
    return context


def shot(page, directory: Path, name: str) -> None:
    page.screenshot(path=str(directory / f"{name}.png"), full_page=True)

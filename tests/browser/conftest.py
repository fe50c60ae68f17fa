"""Headless Chromium (the Debian build: Playwright's own browser download does not work here) with a record of
every request the browser makes, and a place for screenshots a person can look at."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.data import REPO


@pytest.fixture(autouse=True, scope="module")
def _allow_orm_beside_playwright() -> Iterator[None]:
    """Playwright's sync API runs an event loop in the test thread; Django refuses ORM calls from a thread with
    a running loop unless told the caller knows better. The test's own ORM calls are plain synchronous ones.
    Scoped to the browser tests only: the variable must not leak into other tests (or their subprocesses)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"


class Browser:
    """One Chromium; a fresh context (own cookies: one person) per `person()`. Every request of every context
    lands in `requests`."""

    def __init__(self, chromium: Any) -> None:
        self._chromium = chromium
        self._contexts: list[Any] = []
        self.requests: list[str] = []

    def person(self, *, javascript: bool = True) -> Any:
        context = self._chromium.new_context(viewport={"width": 1366, "height": 800}, locale="en-US",
                                             java_script_enabled=javascript)
        context.set_default_timeout(20_000)
        context.on("request", lambda request: self.requests.append(request.url))
        self._contexts.append(context)
        return context.new_page()

    def close(self) -> None:
        for context in self._contexts:
            context.close()

    @staticmethod
    def screenshot(page: Any, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        return path


@pytest.fixture
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        recorder = Browser(chromium)
        try:
            yield recorder
        finally:
            recorder.close()
            chromium.close()

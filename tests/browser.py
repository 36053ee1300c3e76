"""Headless Chromium for the browser tests: Debian's ``chromium`` driven by Playwright (``pip install
playwright``; never ``playwright install``: the browser is the system one).

A missing piece skips the test module, or fails it where the browser tests must run: CI sets
``V2MEOW_REQUIRE_BROWSER=1`` in ``.ci/run``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--autoplay-policy=no-user-gesture-required"]


def missing(reason: str) -> None:
    """Skip the calling test module, or fail it under ``V2MEOW_REQUIRE_BROWSER=1``."""
    if os.environ.get("V2MEOW_REQUIRE_BROWSER") == "1":
        pytest.fail(f"a browser test cannot run: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require_browser() -> None:
    """Call at module level: Chromium and Playwright are there, or the module skips (fails in CI)."""
    if not os.access(CHROMIUM, os.X_OK):
        missing(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    try:
        from playwright import sync_api  # noqa: F401
    except ImportError as e:  # not installed, or installed without a working greenlet
        missing(f"playwright is missing (pip install playwright): {e}")


@contextlib.contextmanager
def chromium() -> Iterator:
    """A launched headless Chromium (a Playwright ``Browser``), closed on exit."""
    from playwright import sync_api

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True, timeout=30_000)
        try:
            yield browser
        finally:
            browser.close()

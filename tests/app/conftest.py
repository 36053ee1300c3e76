"""The browser fixture shared by the page tests (see ``tests/browser.py``)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def browser():
    from browser import chromium

    with chromium() as b:
        yield b

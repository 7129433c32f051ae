"""Tests marked ``needs_receipts`` are skipped while the store has only the stand-in of the
receipts branch (INTERFACES.md, part A), and run as soon as the real methods replace it."""

from __future__ import annotations

import inspect

import pytest

from hashmesh.node.store import sqlite

STAND_IN = "# --- receipts: stand-in until the receipts branch lands ---"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if STAND_IN not in inspect.getsource(sqlite):
        return
    skip = pytest.mark.skip(reason="needs the receipts branch (the store has its stand-in)")
    for item in items:
        if item.get_closest_marker("needs_receipts") is not None:
            item.add_marker(skip)

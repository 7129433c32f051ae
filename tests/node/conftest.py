"""Fixtures of the intake page's browser tests (one Chromium and one node per module)."""

from tests.node.intake_browser import browser, intake_node, video  # noqa: F401

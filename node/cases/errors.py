"""The errors of the case verbs; the API and the CLI map each to one answer."""

from __future__ import annotations

import math


class CaseError(Exception):
    """A case verb cannot be done (the base of the case errors)."""

    code = "CASE_ERROR"

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


class CaseAccessError(CaseError):
    """The reference and PIN do not open a case. One error for a wrong reference and a wrong
    PIN, so that an answer never tells whether a reference exists."""

    code = "CASE_ACCESS_DENIED"

    def __init__(self) -> None:
        super().__init__("this reference and PIN do not open a case; check both and try again")


class CaseLockedError(CaseError):
    """Too many wrong tries: for this reference, or from this client address."""

    code = "CASE_LOCKED"

    def __init__(self, retry_after_seconds: float) -> None:
        self.retry_after_seconds = max(1, math.ceil(retry_after_seconds))
        minutes = math.ceil(self.retry_after_seconds / 60)
        super().__init__(f"too many wrong tries; try again in {minutes} minute"
                         f"{'' if minutes == 1 else 's'}")


class CaseLimitError(CaseError):
    """A case would hold more items than ``[cases] max_items`` allows."""

    code = "CASE_TOO_LARGE"


class CaseStateError(CaseError):
    """The case is not in a state that allows this (approving a case that is open)."""

    code = "CASE_STATE"


class CaseNotFoundError(CaseError):
    """No case has this internal id (the review queue's verbs; never for a reference)."""

    code = "CASE_NOT_FOUND"

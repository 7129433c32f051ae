"""TEMPORARY stand-in until the cases branch lands.

The smallest in-memory version of INTERFACES.md part B, so the intake page (issue 13) can be
built and tested before the real ``node/cases/`` arrives. The lead replaces this whole file
(and the marked block at the end of ``NodeService``) with the cases branch at merge. Nothing
may build on its internals: only the names INTERFACES.md part B lists.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from hashmesh.protocol.records import Distribution, Item, Target


class CaseError(Exception):
    """Base of the errors the case verbs raise."""


class CaseAccessError(CaseError):
    """Wrong reference or wrong PIN (one error: never says which)."""


class CaseLockedError(CaseError):
    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(f"too many wrong PINs; try again in {retry_after_seconds} s")
        self.retry_after_seconds = retry_after_seconds


class CaseLimitError(CaseError):
    """Too many items in one case."""


@dataclass(frozen=True)
class OpenedCase:
    reference: str
    pin: str
    state: str
    records: list[str]


@dataclass(frozen=True)
class CaseSummary:
    case_id: str
    state: str
    items: int


@dataclass
class CaseStatus:
    state: str
    items: int

    def as_json(self) -> dict[str, object]:
        return {"state": self.state, "items": self.items}

    def plain_words(self, lang: str = "en") -> list[str]:
        return [f"state: {self.state}", f"items: {self.items}"]


@dataclass
class _Case:
    reference: str
    pin: str
    items: list[Item]
    dist: Distribution
    state: str
    records: list[str] = field(default_factory=list)


AddItems = Callable[[Sequence[Item], Distribution, str], Awaitable[list[str]]]
RevokeRecords = Callable[[Sequence[Target], str], Awaitable[None]]


class StandInCases:
    """In memory only: a restart forgets every case (the real one keeps them in the store)."""

    def __init__(self, add: AddItems, revoke: RevokeRecords, max_items: int = 1000) -> None:
        self.add, self.revoke, self.max_items = add, revoke, max_items
        self.cases: dict[str, _Case] = {}

    async def open_case(self, items: Sequence[Item], dist: Distribution, actor: str, *,
                        review: bool = False) -> OpenedCase:
        if len(items) > self.max_items:
            raise CaseLimitError(f"at most {self.max_items} items in one case")
        case = _Case(f"HM-{secrets.token_hex(6).upper()}", f"{secrets.randbelow(10**8):08d}",
                     list(items), dist, "pending_review" if review else "active")
        if not review:
            case.records = await self.add(items, dist, actor)
        self.cases[secrets.token_hex(8)] = case
        return OpenedCase(case.reference, case.pin, case.state, list(case.records))

    async def approve_case(self, case_id: str, actor: str) -> CaseSummary:
        case = self.cases[case_id]
        case.records = await self.add(case.items, case.dist, actor)
        case.state = "active"
        return CaseSummary(case_id, case.state, len(case.items))

    async def pending_cases(self) -> list[CaseSummary]:
        return [CaseSummary(cid, c.state, len(c.items)) for cid, c in self.cases.items()
                if c.state == "pending_review"]

    def _find(self, reference: str, pin: str) -> _Case:
        for case in self.cases.values():
            if secrets.compare_digest(case.reference, reference) and \
                    secrets.compare_digest(case.pin, pin):
                return case
        raise CaseAccessError("no case with that reference and PIN")

    async def case_status(self, reference: str, pin: str, client: str) -> CaseStatus:
        case = self._find(reference, pin)
        return CaseStatus(case.state, len(case.items))

    async def withdraw_case(self, reference: str, pin: str, client: str) -> CaseStatus:
        case = self._find(reference, pin)
        if case.records and case.state == "active":
            await self.revoke([Target(record) for record in case.records], "withdrawn")
        case.state = "withdrawn"
        return CaseStatus(case.state, len(case.items))

"""What a person, or a helpline, is told about one case: as JSON and in plain words.

Built from what this node holds: the case row, the receipts other nodes signed for the
case's records (``NodeStore.receipts_for``), the feedback organisations sent about them, and
when each node was last heard from. The known nodes are the origins of the configured peers
and every node a receipt came from; this node itself is not counted (it stops matching the
moment it signs the withdrawal).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hashmesh.node.store.cases import CaseRow
from hashmesh.node.store.interface import ReceiptRow

VERDICT_ORDER = ("confirmed", "actioned", "disputed", "not_ncii")


@dataclass(frozen=True)
class NodeProgress:
    """One known node's part in a case."""

    origin: str
    name: str | None
    active_records: int = 0          # records of the case it confirmed are matching there
    active_after_ms: int | None = None   # slowest time-to-active, once all are confirmed
    removed_after_ms: int | None = None  # time-to-removal of the withdrawal
    last_seen_ms: int | None = None  # when anything last came from it (this node's clock)

    def label(self) -> str:
        return self.name or short_origin(self.origin)


@dataclass(frozen=True)
class OrganisationFeedback:
    origin: str
    name: str | None
    verdicts: Mapping[str, int]      # verdict -> items (or whole records) it was given to

    def label(self) -> str:
        return self.name or short_origin(self.origin)


@dataclass(frozen=True)
class CaseStatus:
    state: str                       # "pending_review", "open" or "withdrawn"
    opened_ms: int
    items: int
    records: int
    withdrawn_ms: int | None
    shared: bool                     # signed and sent (False while held for review)
    nodes: tuple[NodeProgress, ...] = ()
    feedback: tuple[OrganisationFeedback, ...] = ()
    now_ms: int = field(default_factory=lambda: int(time.time() * 1000))

    @property
    def active_nodes(self) -> list[NodeProgress]:
        return [n for n in self.nodes if self.records and n.active_records >= self.records]

    @property
    def stopped_nodes(self) -> list[NodeProgress]:
        return [n for n in self.nodes if n.removed_after_ms is not None]

    @property
    def not_stopped(self) -> list[NodeProgress]:
        return [n for n in self.nodes if n.removed_after_ms is None]

    @property
    def withdrawal_signed(self) -> bool:
        return self.withdrawn_ms is not None and self.shared

    def as_json(self) -> dict[str, Any]:
        stopped = self.stopped_nodes
        return {
            "state": self.state,
            "opened_ms": self.opened_ms,
            "items": self.items,
            "records": self.records,
            "shared": self.shared,
            "active": {"nodes": len(self.active_nodes), "of": len(self.nodes),
                       "slowest_seconds": _seconds(_slowest(
                           n.active_after_ms for n in self.active_nodes))},
            "feedback": [{"origin": f.origin, "name": f.name, **dict(f.verdicts)}
                         for f in self.feedback],
            "withdrawal": None if self.withdrawn_ms is None else {
                "at_ms": self.withdrawn_ms,
                "signed": self.withdrawal_signed,
                "stopped": len(stopped),
                "of": len(self.nodes),
                "slowest_seconds": _seconds(_slowest(n.removed_after_ms for n in stopped)),
                "not_confirmed": [{"origin": n.origin, "name": n.name,
                                   "last_seen_ms": n.last_seen_ms}
                                  for n in self.not_stopped] if self.withdrawal_signed else [],
            },
            "nodes": [{"origin": n.origin, "name": n.name,
                       "active_records": n.active_records,
                       "active_after_seconds": _seconds(n.active_after_ms),
                       "removed_after_seconds": _seconds(n.removed_after_ms),
                       "last_seen_ms": n.last_seen_ms} for n in self.nodes],
        }

    def plain_words(self, lang: str = "en") -> list[str]:
        """Short sentences for a person, in ``lang`` (English for a language not shipped)."""
        words = PHRASES.get(lang, PHRASES["en"])
        lines = [self._state_line(words)]
        if self.shared:
            lines.append(self._active_line(words))
            lines.append(self._feedback_line(words))
        if self.withdrawal_signed:
            lines.append(self._withdrawal_line(words))
        return lines

    def _state_line(self, words: Mapping[str, str]) -> str:
        items = words["items"].format(n=self.items, s="" if self.items == 1 else "s")
        opened = _when(self.opened_ms)
        if self.state == "pending_review":
            return words["pending"].format(when=opened, items=items)
        if self.state == "withdrawn" and not self.shared:
            return words["withdrawn_unshared"].format(when=_when(self.withdrawn_ms or 0))
        return words["opened"].format(when=opened, items=items)

    def _active_line(self, words: Mapping[str, str]) -> str:
        if not self.nodes:
            return words["no_nodes"]
        active = self.active_nodes
        line = words["was_active" if self.withdrawn_ms is not None else "active"].format(
            n=len(active), m=len(self.nodes))
        slowest = _slowest(n.active_after_ms for n in active)
        if slowest is not None:
            line += words["slowest"].format(t=duration(slowest))
        waiting = [n for n in self.nodes if n not in active]
        if waiting and self.state == "open":
            line += words["unconfirmed"].format(nodes=self._who(waiting, words))
        return line + "."

    def _feedback_line(self, words: Mapping[str, str]) -> str:
        if not self.feedback:
            return words["no_feedback"]
        parts = []
        for org in self.feedback:
            counts = ", ".join(f"{words['verdict_' + v]} {org.verdicts[v]}"
                               for v in VERDICT_ORDER if org.verdicts.get(v))
            parts.append(f"{org.label()}: {counts}")
        return words["feedback"].format(parts="; ".join(parts)) + "."

    def _withdrawal_line(self, words: Mapping[str, str]) -> str:
        stopped = self.stopped_nodes
        line = words["withdrawn"].format(when=_when(self.withdrawn_ms or 0))
        line += (words["stopped"].format(n=len(stopped), m=len(self.nodes)) if self.nodes
                 else words["stopped_here"])
        slowest = _slowest(n.removed_after_ms for n in stopped)
        if slowest is not None:
            line += words["slowest"].format(t=duration(slowest))
        if self.not_stopped:
            line += words["unconfirmed"].format(nodes=self._who(self.not_stopped, words))
        return line + "."

    def _who(self, nodes: Sequence[NodeProgress], words: Mapping[str, str]) -> str:
        return "; ".join(
            f"{n.label()}, " + (words["never_seen"] if n.last_seen_ms is None else
                                words["last_seen"].format(
                                    ago=duration(max(0, self.now_ms - n.last_seen_ms))))
            for n in nodes)


PHRASES: dict[str, dict[str, str]] = {
    "en": {
        "items": "{n} item{s}",
        "pending": "Opened {when} with {items}; waiting for a helpline to review it. "
                   "Nothing has been shared yet.",
        "opened": "Opened {when} with {items}; signed and shared.",
        "withdrawn_unshared": "Withdrawn {when}, before it was shared: nothing was sent "
                              "to any other node.",
        "no_nodes": "No other node is known to this one yet.",
        "active": "Confirmed active at {n} of {m} known nodes",
        "was_active": "Was confirmed active at {n} of {m} known nodes",
        "slowest": "; slowest {t}",
        "unconfirmed": "; not yet confirmed: {nodes}",
        "last_seen": "last seen {ago} ago",
        "never_seen": "not heard from yet",
        "no_feedback": "No organisation has reported back yet.",
        "feedback": "Reported back: {parts}",
        "verdict_confirmed": "confirmed",
        "verdict_actioned": "actioned",
        "verdict_disputed": "disputed",
        "verdict_not_ncii": "not NCII",
        "withdrawn": "Withdrawn {when}",
        "stopped": "; stopped matching at {n} of {m} nodes",
        "stopped_here": "; it no longer matches at this node",
    },
    "fr": {
        "items": "{n} élément{s}",
        "pending": "Ouvert le {when} avec {items} ; en attente de vérification par une "
                   "ligne d'écoute. Rien n'a encore été partagé.",
        "opened": "Ouvert le {when} avec {items} ; signé et partagé.",
        "withdrawn_unshared": "Retiré le {when}, avant tout partage : rien n'a été envoyé "
                              "à un autre nœud.",
        "no_nodes": "Ce nœud ne connaît encore aucun autre nœud.",
        "active": "Actif confirmé sur {n} des {m} nœuds connus",
        "was_active": "Était actif confirmé sur {n} des {m} nœuds connus",
        "slowest": " ; le plus lent {t}",
        "unconfirmed": " ; pas encore confirmé : {nodes}",
        "last_seen": "vu pour la dernière fois il y a {ago}",
        "never_seen": "jamais entendu",
        "no_feedback": "Aucune organisation n'a encore répondu.",
        "feedback": "Réponses : {parts}",
        "verdict_confirmed": "confirmé",
        "verdict_actioned": "traité",
        "verdict_disputed": "contesté",
        "verdict_not_ncii": "pas NCII",
        "withdrawn": "Retiré le {when}",
        "stopped": " ; ne correspond plus sur {n} des {m} nœuds",
        "stopped_here": " ; il ne correspond plus sur ce nœud",
    },
    "es": {
        "items": "{n} elemento{s}",
        "pending": "Abierto el {when} con {items}; a la espera de que una línea de ayuda lo "
                   "revise. Todavía no se ha compartido nada.",
        "opened": "Abierto el {when} con {items}; firmado y compartido.",
        "withdrawn_unshared": "Retirado el {when}, antes de compartirse: no se envió nada "
                              "a ningún otro nodo.",
        "no_nodes": "Este nodo todavía no conoce ningún otro nodo.",
        "active": "Activo confirmado en {n} de {m} nodos conocidos",
        "was_active": "Estuvo activo confirmado en {n} de {m} nodos conocidos",
        "slowest": "; el más lento {t}",
        "unconfirmed": "; sin confirmar todavía: {nodes}",
        "last_seen": "visto por última vez hace {ago}",
        "never_seen": "sin noticias todavía",
        "no_feedback": "Ninguna organización ha respondido todavía.",
        "feedback": "Respuestas: {parts}",
        "verdict_confirmed": "confirmado",
        "verdict_actioned": "atendido",
        "verdict_disputed": "disputado",
        "verdict_not_ncii": "no es NCII",
        "withdrawn": "Retirado el {when}",
        "stopped": "; dejó de coincidir en {n} de {m} nodos",
        "stopped_here": "; ya no coincide en este nodo",
    },
}


def build_status(row: CaseRow, *, known: Mapping[str, str | None],
                 last_seen: Mapping[str, int], receipts: Iterable[ReceiptRow],
                 verdicts: Mapping[str, Mapping[str, str]],
                 names: Mapping[str, str | None], now_ms: int | None = None) -> CaseStatus:
    """The status of ``row``. ``known``: the known nodes (origin -> name); ``verdicts``:
    each feedback target of the case's records -> origin -> standing verdict; ``names``:
    names of the origins that sent feedback."""
    records = set(row.records)
    active: dict[str, dict[str, int]] = {}
    removed: dict[str, int] = {}
    for receipt in receipts:
        took = max(0, receipt.applied_ms - receipt.target_ts)
        if receipt.kind == "active" and receipt.target in records:
            per_node = active.setdefault(receipt.node, {})
            per_node[receipt.target] = max(per_node.get(receipt.target, 0), took)
        elif receipt.kind == "removed" and receipt.target == row.withdraw_record:
            removed[receipt.node] = min(removed.get(receipt.node, took), took)
    nodes = []
    for origin in sorted(known, key=lambda o: (known[o] or "~", o)):
        confirmed = active.get(origin, {})
        nodes.append(NodeProgress(
            origin=origin, name=known[origin], active_records=len(confirmed),
            active_after_ms=max(confirmed.values()) if len(confirmed) >= len(records) and
            confirmed else None,
            removed_after_ms=removed.get(origin), last_seen_ms=last_seen.get(origin)))
    by_origin: dict[str, dict[str, int]] = {}
    for target_verdicts in verdicts.values():
        for origin, verdict in target_verdicts.items():
            counts = by_origin.setdefault(origin, {})
            counts[verdict] = counts.get(verdict, 0) + 1
    feedback = tuple(OrganisationFeedback(origin, names.get(origin), counts)
                     for origin, counts in sorted(by_origin.items(),
                                                  key=lambda kv: (names.get(kv[0]) or "~",
                                                                  kv[0])))
    return CaseStatus(
        state=row.state, opened_ms=row.opened_ms, items=row.items, records=len(records),
        withdrawn_ms=row.withdrawn_ms, shared=bool(records), nodes=tuple(nodes),
        feedback=feedback, **({} if now_ms is None else {"now_ms": now_ms}))


def duration(ms: int) -> str:
    """``1.8 s``, ``45 s``, ``12 min``, ``3 h``, ``4 days``: as a person says it."""
    seconds = ms / 1000
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86_400:.0f} days"


def short_origin(origin: str) -> str:
    kind, _, key = origin.partition(":")
    return f"{kind}:{key[:8]}…" if key else origin


def _when(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ms / 1000))


def _slowest(values: Iterable[int | None]) -> int | None:
    found = [v for v in values if v is not None]
    return max(found) if found else None


def _seconds(ms: int | None) -> float | None:
    return None if ms is None else round(ms / 1000, 3)

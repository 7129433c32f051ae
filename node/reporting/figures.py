"""The numbers of a transparency report, counted from the node's store for one period.

Where each number comes from:

* cases opened and withdrawn per week: audit rows ``case_open`` and ``case_withdraw``;
* adds and revokes per week: this node's own log (records, and the items and targets in
  their bodies; an add whose hashes retention erased is still counted as a record);
* matches per organisation: audit ``match`` rows, one count for each origin whose records
  a match hit; actions: ``feedback`` records with verdict ``actioned`` or ``confirmed``, per
  organisation that reported them;
* time to removal per peer: receipts of kind ``removed`` applied in the period
  (``applied_ms - target_ts``), percentiles per peer;
* disputes: ``disputed`` and ``not_ncii`` feedback per organisation, and this origin's items
  quarantined now (``matching.verdicts.dispute_state``).

Organisations and peers are named by ``peers.toml`` (this node by its ``node.name``); an
origin no peer is pinned to is shown as "other organisations", never by key.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from hashmesh.node.config.node import NodeConfig
from hashmesh.node.config.peers import PeersConfig
from hashmesh.node.matching.verdicts import Policy, dispute_state, standing_verdicts
from hashmesh.node.store.interface import NodeStore
from hashmesh.protocol.records import AddBody, FeedbackBody, RevokeBody, SignedRecord

DAY_MS = 86_400_000
OTHERS = "other organisations"
ACTIONS = ("actioned", "confirmed")
DISPUTES = ("disputed", "not_ncii")


@dataclass(frozen=True)
class Period:
    """Whole UTC days, ``first`` to ``last`` included."""

    first: dt.date
    last: dt.date

    @classmethod
    def parse(cls, first: str, last: str) -> Period:
        start, end = _date(first, "--from"), _date(last, "--to")
        if end < start:
            raise ValueError(f"--to: {last} is before --from {first}")
        return cls(start, end)

    @property
    def start_ms(self) -> int:
        return _ms(self.first)

    @property
    def end_ms(self) -> int:
        return _ms(self.last + dt.timedelta(days=1))

    def weeks(self) -> list[dt.date]:
        """The Monday of every ISO week the period touches."""
        monday = self.first - dt.timedelta(days=self.first.weekday())
        weeks = []
        while monday <= self.last:
            weeks.append(monday)
            monday += dt.timedelta(days=7)
        return weeks

    def week_of(self, ms: int) -> dt.date:
        day = dt.datetime.fromtimestamp(ms / 1000, dt.UTC).date()
        return day - dt.timedelta(days=day.weekday())

    def holds(self, ms: int) -> bool:
        return self.start_ms <= ms < self.end_ms


def _date(text: str, field: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{field}: expected a date as YYYY-MM-DD, got {text[:40]!r}") from None


def _ms(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000)


class Names:
    """Organisation names: this node's, then each origin peers.toml pins a peer to."""

    def __init__(self, config: NodeConfig, peers: PeersConfig, own_origin: str) -> None:
        self.names = {**peers.origin_names(), own_origin: config.name}

    def __call__(self, origin: str) -> str:
        return self.names.get(origin, OTHERS)


def build_report(store: NodeStore, config: NodeConfig, peers: PeersConfig, own_origin: str,
                 period: Period, generated_at: dt.datetime | None = None) -> dict[str, Any]:
    """Every figure of the report, as JSON-ready aggregates."""
    names = Names(config, peers, own_origin)
    weeks = period.weeks()
    generated = generated_at or dt.datetime.now(dt.UTC)
    return {
        "node": config.name,
        "period": {"from": period.first.isoformat(), "to": period.last.isoformat()},
        "generated_at": generated.replace(microsecond=0).isoformat(),
        "weeks": [week.isoformat() for week in weeks],
        "cases": _cases(store, period, weeks),
        "log": _own_log(store, own_origin, period, weeks),
        "organisations": _organisations(store, period, names),
        "time_to_removal": _time_to_removal(store, period, names),
        "disputes": _disputes(store, config, own_origin, period, names),
    }


def _per_week(times: Iterable[int], period: Period, weeks: Sequence[dt.date],
              weights: Iterable[int] | None = None) -> list[int]:
    counts: Counter[dt.date] = Counter()
    for ms, weight in zip(times, weights if weights is not None else _ones(), strict=False):
        counts[period.week_of(ms)] += weight
    return [counts[week] for week in weeks]


def _ones() -> Iterable[int]:
    while True:
        yield 1


def _cases(store: NodeStore, period: Period, weeks: Sequence[dt.date]) -> dict[str, Any]:
    rows = store.audit_between(period.start_ms, period.end_ms, ("case_open", "case_withdraw"))
    opened = [r["ts"] for r in rows if r["action"] == "case_open"]
    withdrawn = [r["ts"] for r in rows if r["action"] == "case_withdraw"]
    return {"opened": _per_week(opened, period, weeks),
            "withdrawn": _per_week(withdrawn, period, weeks),
            "total_opened": len(opened), "total_withdrawn": len(withdrawn)}


def _records(store: NodeStore, period: Period, types: Sequence[str],
             origin: str | None = None) -> Iterable[SignedRecord]:
    """Records of these types (of one origin, or all) signed in the period."""
    for raw in store.records_of_types(types, origin):
        record = SignedRecord.from_bytes(raw)
        if period.holds(record.head.ts):
            yield record


def _own_log(store: NodeStore, origin: str, period: Period,
             weeks: Sequence[dt.date]) -> dict[str, Any]:
    adds, revokes = [], []
    for record in _records(store, period, ("add", "revoke"), origin):
        if record.head.type == "add":
            items = len(record.body.items) if isinstance(record.body, AddBody) else 0
            adds.append((record.head.ts, items))
        else:
            targets = len(record.body.targets) if isinstance(record.body, RevokeBody) else 0
            revokes.append((record.head.ts, targets))
    return {
        "add_records": _per_week((t for t, _ in adds), period, weeks),
        "items_added": _per_week((t for t, _ in adds), period, weeks, (n for _, n in adds)),
        "revoke_records": _per_week((t for t, _ in revokes), period, weeks),
        "items_revoked": _per_week((t for t, _ in revokes), period, weeks,
                                   (n for _, n in revokes)),
        "total_add_records": len(adds), "total_items_added": sum(n for _, n in adds),
        "total_revoke_records": len(revokes),
        "total_items_revoked": sum(n for _, n in revokes),
    }


def _organisations(store: NodeStore, period: Period, names: Names) -> list[dict[str, Any]]:
    matches: Counter[str] = Counter()
    for row in store.audit_between(period.start_ms, period.end_ms, ("match",)):
        for origin in _match_origins(store, row["detail"]):
            matches[names(origin)] += 1
    verdicts: Counter[tuple[str, str]] = Counter()
    for record in _records(store, period, ("feedback",)):
        if isinstance(record.body, FeedbackBody):
            verdicts[(names(record.head.origin), record.body.verdict)] += 1
    organisations = sorted({*matches, *(name for name, _ in verdicts)})
    return [{"name": name, "matches": matches[name],
             **{verdict: verdicts[(name, verdict)] for verdict in ACTIONS}}
            for name in organisations]


def _match_origins(store: NodeStore, detail: dict[str, Any]) -> set[str]:
    """The origins a match row hit: named in the row, or (rows written before they were)
    read from the matched records' heads."""
    if "origins" in detail:
        return set(detail["origins"])
    found = set()
    for record_id in detail.get("matched_records", []):
        raw = store.record_bytes(record_id)
        if raw is not None:
            found.add(SignedRecord.from_bytes(raw).head.origin)
    return found


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of already sorted values."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _time_to_removal(store: NodeStore, period: Period, names: Names) -> list[dict[str, Any]]:
    seconds: dict[str, list[float]] = {}
    for receipt in store.receipts_between(period.start_ms, period.end_ms):
        if receipt.kind == "removed":
            seconds.setdefault(names(receipt.node), []).append(
                max(0, receipt.applied_ms - receipt.target_ts) / 1000)
    result = []
    for name in sorted(seconds):
        values = sorted(seconds[name])
        result.append({"peer": name, "removals": len(values),
                       "p50_s": percentile(values, 0.5), "p90_s": percentile(values, 0.9),
                       "p99_s": percentile(values, 0.99), "max_s": values[-1]})
    return result


def _disputes(store: NodeStore, config: NodeConfig, own_origin: str, period: Period,
              names: Names) -> dict[str, Any]:
    counts: Counter[tuple[str, str]] = Counter()
    for record in _records(store, period, ("feedback",)):
        if isinstance(record.body, FeedbackBody) and record.body.verdict in DISPUTES:
            counts[(names(record.head.origin), record.body.verdict)] += 1
    organisations = sorted({name for name, _ in counts})
    feedback = store.feedback_on_origin(own_origin)
    frozen = store.frozen()
    policy = Policy.from_config(config.match)
    quarantined = 0
    for target in feedback:
        record_id, _, item = target.partition("/")
        standing = (standing_verdicts(feedback, record_id, int(item)) if item
                    else feedback[target])
        quarantined += dispute_state(standing, own_origin, frozen, policy).disputed
    return {"by_organisation": [{"name": name, **{v: counts[(name, v)] for v in DISPUTES}}
                                for name in organisations],
            "total_disputed": sum(n for (_, v), n in counts.items() if v == "disputed"),
            "total_not_ncii": sum(n for (_, v), n in counts.items() if v == "not_ncii"),
            "quarantined_items_now": quarantined}


def report_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=True) + "\n"

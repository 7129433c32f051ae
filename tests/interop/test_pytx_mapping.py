"""The extension's mapping from feed changes to pytx updates, without a network."""

from __future__ import annotations

from typing import Any

from threatexchange.exchanges.fetch_state import SignalOpinionCategory
from threatexchange.signal_type.md5 import VideoMD5Signal
from threatexchange.signal_type.pdq.signal import PdqSignal

from hashmesh.node.cli.client import LocalClient
from hashmesh.node.interop.pytx import HashmeshCollabConfig, HashmeshSignalExchangeAPI

PDQ = "f" * 64


def change(kind: str = "add", ref: str = "a" * 64 + "/0", **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "item": ref, "origin": "ed25519:x", "list": "ncii",
            "labels": ["intimate"], "verdicts": {}, "in_force": True,
            "hashes": [{"type": "pdq", "value": PDQ}, {"type": "md5", "value": "0" * 32},
                       {"type": "phash", "value": "0" * 16}], **extra}


def api(**config: Any) -> HashmeshSignalExchangeAPI:
    collab = HashmeshCollabConfig(name="n", node_url="http://127.0.0.1:9", **config)
    return HashmeshSignalExchangeAPI(collab, LocalClient(collab.node_url, "t"))


def test_tombstones_and_items_out_of_force_are_deletions() -> None:
    exchange = api()
    assert exchange._value(change("revoke")) is None
    assert exchange._value(change("expire")) is None
    assert exchange._value(change("quarantine")) is None  # a kind this release does not know
    assert exchange._value(change("verdict", in_force=False)) is None
    assert exchange._value(change("verdict", quarantined=True)) is None
    assert exchange._value(change("add", quarantined=True)) is None
    assert exchange._value(change("verdict", quarantined=False)) is not None  # lifted: back
    value = exchange._value(change())
    assert value is not None
    assert value.hashes == {"pdq": PDQ, "video_md5": "0" * 32}  # phash: no pytx type


def test_label_filter_drops_items_without_those_labels() -> None:
    assert api(labels={"other"})._value(change()) is None
    assert api(labels={"intimate", "other"})._value(change()) is not None


def test_items_sharing_a_hash_are_one_signal_with_both_refs() -> None:
    exchange = api()
    first, second = (exchange._value(change(ref=ref, verdicts=verdicts)) for ref, verdicts in
                     (("a" * 64 + "/0", {"not_ncii": 2}), ("b" * 64 + "/1", {"confirmed": 1})))
    assert first is not None and second is not None
    signals = HashmeshSignalExchangeAPI.naive_convert_to_signal_type(
        [PdqSignal, VideoMD5Signal], exchange.collab, {"x": first, "y": second})
    meta = signals[PdqSignal][PDQ]
    assert sorted(meta.items) == ["a" * 64 + "/0", "b" * 64 + "/1"]
    assert meta.verdicts == {"not_ncii": 2, "confirmed": 1}
    categories = {o.category for o in meta.get_as_opinions()}
    assert categories == {SignalOpinionCategory.POSITIVE_CLASS,
                          SignalOpinionCategory.NEGATIVE_CLASS}

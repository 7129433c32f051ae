"""SPEC §20: checkpoints, cosignatures, judging a checkpoint against a chain, split-view proofs.

Each entry of ``protocol/vectors/checkpoints.json`` becomes a case: the valid checkpoint is
reproduced byte for byte by signing its inputs, every invalid one is refused with its code
and path, every judgement gives its verdict (and the split view its exact proof).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import hashmesh.protocol
from hashmesh.protocol.checkpoints import (
    Checkpoint,
    SplitView,
    Verdict,
    judge,
)
from hashmesh.protocol.errors import ProtocolError
from hashmesh.protocol.keys import SigningKey
from hashmesh.protocol.records import SignedRecord
from hashmesh.protocol.signing import KeyRing
from tests.protocol import generate_checkpoint_vectors

VECTORS = json.loads((Path(hashmesh.protocol.__file__).parent / "vectors" /
                      "checkpoints.json").read_text(encoding="utf-8"))
LOG = [SignedRecord.from_bytes(line.encode()) for line in VECTORS["log"]]
KEYS = {name: SigningKey(bytes.fromhex(key["seed_hex"])) for name, key in VECTORS["keys"].items()}
ORIGIN = KEYS["root"].id


def ring() -> KeyRing:
    return KeyRing.from_records(ORIGIN, LOG)


def named(entries: list[dict[str, Any]]) -> Any:
    return pytest.mark.parametrize("vector", entries, ids=[e["name"] for e in entries])


def test_signing_the_inputs_reproduces_the_valid_vector_exactly() -> None:
    valid = VECTORS["valid"]
    body = json.loads(valid["checkpoint_bytes"])
    made = Checkpoint.sign(KEYS["signing"], origin=ORIGIN, seq=body["seq"],
                           record_id=body["id"], ts=body["ts"])
    assert made.raw.decode() == valid["unsigned"]
    cosigned = made.cosign(KEYS["witness_a"]).cosign(KEYS["witness_b"])
    assert cosigned.raw.decode() == valid["cosigned"]
    parsed = Checkpoint.from_bytes(valid["cosigned"].encode())
    parsed.verify(ring())
    assert parsed.witnessed_by(set(valid["witnessed_by"]["witnesses"]))
    assert not parsed.witnessed_by(set(valid["witnessed_by"]["witnesses"]), quorum=2)
    assert not parsed.witnessed_by(set())


@named(VECTORS["invalid"])
def test_invalid_checkpoint_is_refused_naming_the_field(vector: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as caught:
        Checkpoint.from_bytes(vector["checkpoint"].encode()).verify(ring())
    assert (caught.value.code, caught.value.path) == (vector["error"]["code"],
                                                       vector["error"]["path"])


@named(VECTORS["judgements"])
def test_judging_a_checkpoint_against_the_chain_held(vector: dict[str, Any]) -> None:
    checkpoint = Checkpoint.from_bytes(vector["checkpoint"].encode())
    checkpoint.verify(ring())
    head = vector["head_seq"]
    held = LOG[checkpoint.seq - 1] if checkpoint.seq <= head else None
    result = judge(checkpoint, head, held)
    assert result.verdict is Verdict(vector["verdict"])
    if "proof" in vector:
        assert result.proof is not None
        assert json.dumps(result.proof.to_json(), sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False) == vector["proof"]
        SplitView.from_json(json.loads(vector["proof"]), keyring=ring())
        fork = SignedRecord.from_bytes(vector["fork_record"].encode())
        assert fork.id == checkpoint.id and fork.head.seq == checkpoint.seq
    else:
        assert result.proof is None


@named(VECTORS["invalid_proofs"])
def test_invalid_split_view_proof_is_refused(vector: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as caught:
        SplitView.from_json(json.loads(vector["proof"]), keyring=ring())
    assert (caught.value.code, caught.value.path) == (vector["error"]["code"],
                                                       vector["error"]["path"])


def test_merging_cosignatures_is_a_sorted_union_of_the_same_checkpoint() -> None:
    made = Checkpoint.sign(KEYS["signing"], origin=ORIGIN, seq=2, record_id=LOG[1].id, ts=1)
    a, b = made.cosign(KEYS["witness_a"]), made.cosign(KEYS["witness_b"])
    merged = a.merge(b)
    assert merged.witnesses == {KEYS["witness_a"].id, KEYS["witness_b"].id}
    assert merged.raw == b.merge(a).raw
    Checkpoint.from_bytes(merged.raw).verify(ring())
    later = Checkpoint.sign(KEYS["signing"], origin=ORIGIN, seq=2, record_id=LOG[1].id, ts=2)
    with pytest.raises(ValueError):
        merged.merge(later)


def test_a_checkpoint_of_another_origin_is_refused_against_this_ring() -> None:
    stranger = Checkpoint.sign(KEYS["stranger"], origin=KEYS["stranger"].id, seq=1,
                               record_id=LOG[0].id, ts=1)
    with pytest.raises(ProtocolError) as caught:
        stranger.verify(ring())
    assert caught.value.path == "checkpoint.checkpoint.origin"


def test_committed_vectors_equal_what_the_generator_produces_now() -> None:
    assert generate_checkpoint_vectors.main(["--check"]) == 0, (
        "protocol/vectors/checkpoints.json is stale: run "
        "python tests/protocol/generate_checkpoint_vectors.py")

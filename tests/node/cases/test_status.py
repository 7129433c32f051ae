"""A case's status from receipts, feedback and last-seen times (``build_status``)."""

from __future__ import annotations

from hashmesh.node.cases.status import build_status, duration
from hashmesh.node.store.cases import CaseRow
from hashmesh.node.store.interface import ReceiptRow

A, B, C = "ed25519:" + "a" * 43, "ed25519:" + "b" * 43, "ed25519:" + "c" * 43
R1, R2, REVOKE = "1" * 64, "2" * 64, "9" * 64
OPENED = 1_780_000_000_000          # 2026-05-28 20:26:40 UTC
WITHDRAWN = OPENED + 3_600_000


def case(**changes: object) -> CaseRow:
    row = CaseRow(case_id="c" * 24, ref_mac="m", pin_hash="h", state="withdrawn",
                  opened_ms=OPENED, opened_by="t", items=3, records=(R1, R2),
                  withdrawn_ms=WITHDRAWN, withdraw_record=REVOKE)
    return CaseRow(**{**row.__dict__, **changes})


def receipt(node: str, target: str, kind: str, took_ms: int, ts: int) -> ReceiptRow:
    return ReceiptRow(node=node, target=target, kind=kind, applied_ms=ts + took_ms,
                      target_ts=ts, receipt="r" * 64)


def test_the_withdrawal_sentence_names_the_slowest_and_the_unconfirmed_node() -> None:
    receipts = [receipt(A, R1, "active", 400, OPENED), receipt(A, R2, "active", 900, OPENED),
                receipt(B, R1, "active", 300, OPENED), receipt(B, R2, "active", 200, OPENED),
                receipt(C, R1, "active", 5_000, OPENED),
                receipt(A, REVOKE, "removed", 1_800, WITHDRAWN),
                receipt(B, REVOKE, "removed", 700, WITHDRAWN)]
    status = build_status(case(), known={A: "commission-au", B: "helpline-nz", C: "commission-fj"},
                          last_seen={A: WITHDRAWN + 5_000, C: WITHDRAWN - 3 * 3_600_000},
                          receipts=receipts, verdicts={f"{R1}/0": {B: "actioned"},
                                                       R2: {B: "confirmed", A: "actioned"}},
                          names={A: "commission-au", B: "helpline-nz"},
                          now_ms=WITHDRAWN + 10_000)
    body = status.as_json()
    assert body["active"] == {"nodes": 2, "of": 3, "slowest_seconds": 0.9}
    assert body["withdrawal"]["stopped"] == 2 and body["withdrawal"]["of"] == 3
    assert body["withdrawal"]["slowest_seconds"] == 1.8
    assert body["withdrawal"]["not_confirmed"] == [
        {"origin": C, "name": "commission-fj", "last_seen_ms": WITHDRAWN - 3 * 3_600_000}]
    assert [n["active_records"] for n in body["nodes"]] == [2, 1, 2]  # au, fj, nz
    assert body["feedback"] == [{"origin": A, "name": "commission-au", "actioned": 1},
                                {"origin": B, "name": "helpline-nz", "actioned": 1,
                                 "confirmed": 1}]
    assert status.plain_words() == [
        "Opened 2026-05-28 20:26 UTC with 3 items; signed and shared.",
        "Was confirmed active at 2 of 3 known nodes; slowest 0.9 s.",
        "Reported back: commission-au: actioned 1; helpline-nz: confirmed 1, actioned 1.",
        "Withdrawn 2026-05-28 21:26 UTC; stopped matching at 2 of 3 nodes; slowest 1.8 s; "
        "not yet confirmed: commission-fj, last seen 3 h ago.",
    ]
    assert status.plain_words("fr")[3].startswith("Retiré le 2026-05-28 21:26 UTC ; ne "
                                                  "correspond plus sur 2 des 3 nœuds")
    assert status.plain_words("es")[3].startswith("Retirado el 2026-05-28 21:26 UTC; dejó de "
                                                  "coincidir en 2 de 3 nodos")
    assert status.plain_words("xx") == status.plain_words("en")


def test_an_open_case_names_the_nodes_that_have_not_confirmed_it() -> None:
    status = build_status(case(state="open", withdrawn_ms=None, withdraw_record=None),
                          known={A: None, B: "helpline-nz"}, last_seen={},
                          receipts=[receipt(B, R1, "active", 100, OPENED),
                                    receipt(B, R2, "active", 120, OPENED)],
                          verdicts={}, names={}, now_ms=OPENED + 1000)
    assert status.plain_words()[1] == ("Confirmed active at 1 of 2 known nodes; slowest 0.1 s; "
                                       "not yet confirmed: ed25519:aaaaaaaa…, not heard from "
                                       "yet.")
    assert status.as_json()["withdrawal"] is None


def test_receipts_for_other_records_do_not_count() -> None:
    status = build_status(case(), known={A: "a"}, last_seen={},
                          receipts=[receipt(A, "7" * 64, "removed", 10, WITHDRAWN),
                                    receipt(A, REVOKE, "active", 10, WITHDRAWN)],
                          verdicts={}, names={}, now_ms=WITHDRAWN)
    assert status.as_json()["withdrawal"]["stopped"] == 0


def test_durations_read_as_a_person_says_them() -> None:
    assert [duration(ms) for ms in (1_800, 45_000, 720_000, 3 * 3_600_000, 4 * 86_400_000)] \
        == ["1.8 s", "45 s", "12 min", "3 h", "4 days"]

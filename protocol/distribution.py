"""Which distribution a record must carry when it is about another record.

Feedback (and any later record that answers a record, such as receipts) says something about
its target: that it exists, what a federation member thinks of it, a free-text note. Sent
further than the target's body may go, it would tell a non-member what the target's stub was
careful not to. So such a record inherits its target's distribution (SPEC §9.2): its body goes
exactly where the target's body may go, and everyone else gets its stub, whose digest is
salted like every withheld body.

Everything here is pure: the target may be a full record or a stub (the head is what counts).
"""

from __future__ import annotations

from collections.abc import Mapping

from hashmesh.protocol.errors import SchemaError
from hashmesh.protocol.records import GROUP_ID_PATTERN, Distribution, FeedbackBody, SignedRecord


def distribution_for_feedback(target: SignedRecord,
                              v1_group_ids: Mapping[str, str] | None = None) -> Distribution:
    """The ``dist`` of (v2) feedback on ``target`` (or on one of its items): the target's own.

    ``peers`` stays ``peers``: the feedback's origin received the target's body from the
    target's origin directly (a ``peers`` body is never relayed), so that origin is among the
    feedback origin's direct peers, and the note goes no further than one hop.

    A v1 target names its group by a readable name, which a v2 record cannot carry:
    ``v1_group_ids`` maps such names to group ids (the node's ``[groups]`` aliases, SPEC
    §9.1). Without an entry this raises ``SchemaError`` rather than guess a wider scope.
    """
    dist = target.head.dist
    if target.head.v >= 2 or dist.group is None:
        return dist
    group_id = (v1_group_ids or {}).get(dist.group)
    if group_id is None or GROUP_ID_PATTERN.fullmatch(group_id) is None:
        raise SchemaError(f"the target's v1 group {dist.group!r} has no group id to carry "
                          "into v2 feedback", "target.head.dist.group")
    return Distribution(dist.scope, group_id, dist.jurisdictions)


def check_feedback_distribution(feedback: SignedRecord, target: SignedRecord,
                                path: str = "record",
                                v1_group_ids: Mapping[str, str] | None = None) -> None:
    """Raise ``SchemaError`` unless v2 ``feedback`` carries its ``target``'s distribution.

    Only a node that holds the target (as a record or a stub) can check this; signers MUST
    build the distribution with ``distribution_for_feedback``. v1 feedback predates the rule.
    """
    body = feedback.body
    if feedback.head.type != FeedbackBody.TYPE or feedback.head.v < 2:
        return
    if body is not None and isinstance(body, FeedbackBody) and body.target.record != target.id:
        raise SchemaError(f"target is {body.target.record}, not {target.id}",
                          f"{path}.body.target.record")
    expected = distribution_for_feedback(target, v1_group_ids)
    if feedback.head.dist != expected:
        raise SchemaError(f"feedback must carry its target's distribution "
                          f"{expected.to_json()}, got {feedback.head.dist.to_json()}",
                          f"{path}.head.dist")

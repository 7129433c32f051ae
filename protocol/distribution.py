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

from hashmesh.protocol.errors import SchemaError
from hashmesh.protocol.records import Distribution, FeedbackBody, SignedRecord


def distribution_for_feedback(target: SignedRecord) -> Distribution:
    """The ``dist`` of feedback on ``target`` (or on one of its items): the target's own.

    ``peers`` stays ``peers``: the feedback's origin received the target's body from the
    target's origin directly (a ``peers`` body is never relayed), so that origin is among the
    feedback origin's direct peers, and the note goes no further than one hop.
    """
    return target.head.dist


def check_feedback_distribution(feedback: SignedRecord, target: SignedRecord,
                                path: str = "record") -> None:
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
    expected = distribution_for_feedback(target)
    if feedback.head.dist != expected:
        raise SchemaError(f"feedback must carry its target's distribution "
                          f"{expected.to_json()}, got {feedback.head.dist.to_json()}",
                          f"{path}.head.dist")

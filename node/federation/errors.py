"""What a peer can do wrong, as seen by the client side of federation.

    PeerProtocolError        the peer answered with something we refuse (status, size, ...)
    ├── RecordRefusedError   a record refused for where the peer put it, not its content
    └── PeerTimeoutError     no complete answer in time (also a ``TimeoutError``)

Kept apart from ``sync.py`` so that ``repair.py`` and ``sync.py`` share them without importing
each other. Both carry a stable ``code``, counted per peer in ``hashmesh_peer_faults``.
"""

from __future__ import annotations


class PeerProtocolError(Exception):
    """The peer answered with something we refuse (bad page, bad status, too large)."""

    def __init__(self, message: str, code: str = "PEER_PROTOCOL",
                 status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status  # the HTTP status, when the peer answered with an error


class RecordRefusedError(PeerProtocolError):
    """A record or head refused for where the peer put it, not for its own content.

    For example a record in another origin's log, or the stub of a record that always
    travels with its body. Counted, like a ``ProtocolError``, in
    ``hashmesh_records_rejected``.
    """


class PeerTimeoutError(PeerProtocolError, TimeoutError):
    """No complete answer in time; the message says which limit ran out, where aiohttp's
    own ``TimeoutError`` for the total limit says nothing at all."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "TIMEOUT")

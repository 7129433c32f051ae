"""Store errors that both backends share and the API maps to a status of their own.

``StoreError`` (``sqlite.py``) is a write that cannot proceed (HTTP 409). A server database
adds one more: the database cannot be reached right now (a restart, a failover, a dropped
connection). That is not the client's fault and passes by itself: HTTP 503, and the process
keeps running and reconnects on the next call.
"""

from __future__ import annotations

from hashmesh.node.store.sqlite import StoreError


class StoreUnavailableError(StoreError):
    """The database server cannot be reached now; retry later."""

    code = "STORE_UNAVAILABLE"
    http_status = 503

"""The node's log lines: plain text or JSON, each tagged with the request it belongs to.

A request id is set by ``request_id_middleware`` (``node/api/routes.py``) in a context
variable for the task that handles the request, so every line logged while handling it,
by any module, carries the same id; the id is also sent back as ``X-Request-Id`` so an
operator can find a client's complaint in the log. A client may send its own id (letters,
digits, ``-_.:``, at most 64), otherwise one is made.

JSON lines (``hashmesh run --log-format json`` or ``[log] format = "json"``) have the keys
``ts``, ``level``, ``logger``, ``msg``, ``request_id`` (when in a request) and ``exc`` (when
an exception is logged). What a line says is unchanged: the node never logs hash values or
image bytes, only record ids, counts and peers.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import secrets
import time
from contextvars import ContextVar

REQUEST_ID_HEADER = "X-Request-Id"
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(request_tag)s: %(message)s"

request_id: ContextVar[str | None] = ContextVar("hashmesh_request_id", default=None)


# A made id is this process's random prefix and a counter: unique in the log without a
# random draw per request (``secrets`` cost ~15 us a request at a few thousand requests/s).
_ID_PREFIX = secrets.token_hex(4)
_id_counter = itertools.count(1)


def new_request_id(offered: str | None = None) -> str:
    """The client's id if it is a safe token, else a new one (16 or more hex characters)."""
    if offered and REQUEST_ID_PATTERN.fullmatch(offered):
        return offered
    return f"{_ID_PREFIX}{next(_id_counter):08x}"


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` (and ``request_tag`` for text lines) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        rid = request_id.get()
        record.request_id = rid
        record.request_tag = f" [{rid}]" if rid else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = getattr(record, "request_id", None)
        if rid:
            line["request_id"] = rid
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Replace the root logger's handlers with one stderr handler in ``fmt``."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {LOG_FORMATS}, got {fmt!r}")
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)

"""A small client for the local API, used by the CLI (and usable by scripts).

Errors come back as ``ClientError`` carrying the server's code and located message, so the
CLI can print them as one line.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


class ClientError(Exception):
    """The node answered with an error, or could not be reached."""

    def __init__(self, message: str, code: str = "CLIENT_ERROR", status: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class LocalClient:
    """Calls one node's local API with a bearer token."""

    def __init__(self, base_url: str, token: str | None, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def call(self, method: str, path: str, *, body: Any = None, data: bytes | None = None,
             params: dict[str, str] | None = None,
             content_type: str = "application/octet-stream") -> Any:
        """One request; the standard library's client, so that a CLI command that only talks
        to the node starts without importing an async HTTP stack (~0.3 s)."""
        headers = {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        elif data is not None:
            headers["Content-Type"] = content_type
        url = self.base_url + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return _json_or_none(response.read().decode("utf-8", "replace"))
        except urllib.error.HTTPError as exc:
            text = exc.read().decode("utf-8", "replace")
            raise _error_from(exc.code, _json_or_none(text), text) from None
        except TimeoutError:
            raise ClientError(f"the node at {self.base_url} did not answer within "
                              f"{self.timeout:.0f} s", "TIMEOUT") from None
        except (urllib.error.URLError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError | socket.timeout):
                raise ClientError(f"the node at {self.base_url} did not answer within "
                                  f"{self.timeout:.0f} s", "TIMEOUT") from None
            raise ClientError(f"cannot reach the node at {self.base_url} ({reason}); is "
                              "`hashmesh run` running?", "UNREACHABLE") from None


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _error_from(status: int, payload: Any, text: str) -> ClientError:
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        error = payload["error"]
        return ClientError(f"{error.get('code')}: {error.get('message')}",
                           str(error.get("code")), status)
    return ClientError(f"HTTP {status}: {text[:200]}", "HTTP_ERROR", status)

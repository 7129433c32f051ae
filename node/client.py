"""A small client for the local API, used by the CLI (and usable by scripts).

Errors come back as ``ClientError`` carrying the server's code and located message, so the
CLI can print them as one line.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp


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
             params: dict[str, str] | None = None) -> Any:
        return asyncio.run(self._call(method, path, body=body, data=data, params=params))

    async def _call(self, method: str, path: str, *, body: Any, data: bytes | None,
                    params: dict[str, str] | None) -> Any:
        headers = {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        elif data is not None:
            headers["Content-Type"] = "application/octet-stream"
        url = self.base_url + path
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session, session.request(
                    method, url, data=data, headers=headers, params=params) as response:
                text = await response.text()
                payload = _json_or_none(text)
                if response.status >= 400:
                    raise _error_from(response.status, payload, text)
                return payload
        except aiohttp.ClientConnectionError as exc:
            raise ClientError(f"cannot reach the node at {self.base_url} ({exc}); is "
                              "`hashmesh run` running?", "UNREACHABLE") from None
        except TimeoutError:
            raise ClientError(f"the node at {self.base_url} did not answer within "
                              f"{self.timeout:.0f} s", "TIMEOUT") from None


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

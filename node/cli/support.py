"""Small helpers shared by the CLI's command modules."""

from __future__ import annotations

import json
import os
import secrets
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

CLI_TOKEN_FILE = "cli-token"


class CliError(Exception):
    """An expected failure, printed as one line with exit status 2."""


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def print_json_line(value: Any) -> None:
    print(json.dumps(value, sort_keys=True), flush=True)


def print_json_lines(values: Iterable[Any]) -> None:
    for value in values:
        print_json_line(value)


def new_token() -> str:
    """A fresh API token: 256 bits from the OS's CSPRNG, with a recognisable prefix."""
    return "hm_" + secrets.token_urlsafe(32)


def cli_token_path(config_path: Path) -> Path:
    return config_path.parent / CLI_TOKEN_FILE


def progress_bar(total: int | None, unit: str, what: str, *, scale: bool = False,
                 wanted: bool = True) -> Any:
    """A tqdm bar on stderr, shown only to a person at a terminal (never in a pipe or a
    log file, and not with ``HASHMESH_NO_PROGRESS``); imported on use, as tqdm costs ~50 ms."""
    from tqdm import tqdm

    shown = wanted and sys.stderr.isatty() and not os.environ.get("HASHMESH_NO_PROGRESS")
    return tqdm(total=total, unit=unit, desc=what, disable=not shown, file=sys.stderr,
                unit_scale=scale, unit_divisor=1024 if scale else 1000, leave=False)

"""``[intake]`` in node.toml: the public page where a person hashes images in the browser and
opens a case (``node/api/intake.py``). Off unless ``enabled = true``.

The page is public by design, so its limits live here: requests a minute and cases an hour
per address, and how many hashes one case may hold. ``review`` (on by default) keeps cases
opened on the page waiting for a helpline's approval before anything is signed or shared.
"""

from __future__ import annotations

from dataclasses import dataclass

from hashmesh.node.config.toml_reader import ConfigError, Table

INTAKE_KEYS = frozenset({"enabled", "host", "port", "review", "max_hashes_per_case",
                         "requests_per_minute", "cases_per_hour", "behind_proxy"})


@dataclass(frozen=True)
class IntakeConfig:
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 8473
    review: bool = True
    # every file gives up to three hashes (PDQ for images, MD5 and SHA-256 for all)
    max_hashes_per_case: int = 60
    requests_per_minute: int = 30
    cases_per_hour: int = 5
    # behind a reverse proxy, every request comes from the proxy: then the address the
    # limits count is the last one in X-Forwarded-For (the one the proxy itself added)
    behind_proxy: bool = False


def parse_intake(table: Table, default_host: str, taken: dict[int, str]) -> IntakeConfig:
    """``taken`` maps the ports other listeners use to the field that sets them."""
    d = IntakeConfig()
    enabled = table.boolean("enabled", default=False)
    host = table.string("host", default=default_host)
    port = table.integer("port", 1, 65535, default=d.port)
    if enabled and port in taken:
        raise ConfigError(f"must differ from {taken[port]} ({port})", table.at("port"))
    return IntakeConfig(
        enabled=enabled, host=host, port=port,
        review=table.boolean("review", default=d.review),
        max_hashes_per_case=table.integer("max_hashes_per_case", 1, 3000,
                                          default=d.max_hashes_per_case),
        requests_per_minute=table.integer("requests_per_minute", 1, 100_000,
                                          default=d.requests_per_minute),
        cases_per_hour=table.integer("cases_per_hour", 1, 100_000, default=d.cases_per_hour),
        behind_proxy=table.boolean("behind_proxy", default=d.behind_proxy),
    )

"""How an origin is named to people: by the peers file, else by its own signed profile.

An origin's profile (``profile`` records, SPEC §4.6) travels with its log, so a node can name
an origin it has no peer entry for, e.g. one whose records were relayed. But a profile is
only what the origin says about itself: anyone can sign "Helpline X". So it is shown marked
``self_declared``, and an operator who knows the origin pins it in ``peers.toml``
(``origin = ...`` with the peer's name), which then names it instead.
"""

from __future__ import annotations

from typing import Any

from hashmesh.protocol.records import ProfileBody


def display_name(pinned: str | None, profile: ProfileBody | None) -> str | None:
    """The name to show: the pinned one (peers file, or this node's own name), else the
    origin's self-declared one."""
    if pinned is not None:
        return pinned
    return None if profile is None else profile.name


def origin_profile(pinned: str | None, profile: ProfileBody | None) -> dict[str, Any] | None:
    """``{"name", "self_declared", "declared"}``: the name shown, whether only the origin
    vouches for it, and the profile the origin signed (if any), or ``None`` if nothing
    names the origin."""
    if pinned is None and profile is None:
        return None
    shown: dict[str, Any] = {"name": display_name(pinned, profile),
                             "self_declared": pinned is None}
    if profile is not None:
        shown["declared"] = profile.to_json()
    return shown

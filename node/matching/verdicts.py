"""The one policy that turns the hits of a match query into verdicts a platform can act on.

Why this exists (issue 11): a bare "within threshold" flagged innocent images. Among distinct
real photographs the 64-bit imagehash types came as close as their own thresholds (a captioned
copy of one photo matched another photo's record through wHash alone), while PDQ never came
within 96 bits of a different photo. For this system an innocent image taken down is the worst
failure there is, so a single short hash is evidence, never a verdict. Every match answer (API,
match workers, CLI) asks this module, and nothing else decides.

Verdict of one stored item (``record/item``) that a query hit, weakest to strongest:

- ``weak``: only one independent 64-bit perceptual hash (phash, dhash, ahash, whash) within its
  threshold; or a PDQ hit through a flip, rotation or trimmed margin while the query asked not to
  count those (``transforms = false``). Reported, never a match.
- ``disputed``: it would be ``match``, but ``not_ncii`` verdicts from ``dispute_origins`` distinct
  origins this node trusts quarantine it (``dispute_state``).
- ``match``: PDQ within its threshold (of the image or of one of its 8 dihedral transforms or of
  the image with its uniform margin or caption bar trimmed); or an exact hash (md5, sha256,
  photodna); or at least ``corroboration`` (default 2) independent 64-bit hashes within their
  corroborating thresholds (``CORROBORATING``, about half the plain ones), aHash and wHash
  counting as one (``SHORT_FAMILIES``).

An answer's top-level verdict is the strongest of its items', ``none`` when nothing matched.

Counting feedback (SPEC §"verdicts"): each origin has one standing verdict per target, its
latest (the store keeps only that). For an item, an origin's verdict on the item ref
(``record/item``) overrides its verdict on the whole record. Origins frozen for equivocation are
not counted. If the item's own origin's standing verdict is ``confirmed``, the item is not
disputed whatever others say: the origin answers for its own records.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from hashmesh.node.config.node import MatchConfig
from hashmesh.protocol.errors import SchemaError
from hashmesh.protocol.hashtypes import get_hash_type

VERDICTS = ("none", "weak", "disputed", "match")  # weakest first
_RANK = {name: rank for rank, name in enumerate(VERDICTS)}
# The 64-bit types by family: aHash and wHash both threshold a low-pass thumbnail against its
# mean or median, so they move together (a canvas-padded photo met another photo's record at
# aHash 7 and wHash 6 at once); they corroborate each other no more than one hash does.
SHORT_FAMILIES = {"phash": "dct", "dhash": "gradient", "ahash": "mean", "whash": "mean"}
SHORT_TYPES = frozenset(SHORT_FAMILIES)
ORIGINAL = "original"

# How close a 64-bit hash must be to count towards a corroborated match: about half its
# threshold. bench/quality_bench.py: resized, thumbnailed and re-lit copies whose PDQ missed
# moved at most phash 2, dhash 5, ahash 1, whash 2, while two photos of one scene from two
# cameras (scikit-image motorcycle_left/right) sat at phash 4, dhash 9, ahash 12, whash 10 --
# both within the plain thresholds (10, 10), a false match. Within the plain threshold but not
# within this one, a hit is reported as weak.
CORROBORATING: Mapping[str, int] = MappingProxyType(
    {"phash": 5, "dhash": 5, "ahash": 4, "whash": 4})
DEFAULT_CORROBORATION = 2
DEFAULT_DISPUTE_ORIGINS = 2
MAX_CORROBORATION = len(set(SHORT_FAMILIES.values())) + 1  # 4: 64-bit alone never match


@dataclass(frozen=True)
class Policy:
    """How hits become verdicts; ``[match]`` in node.toml, made stricter per query."""

    corroboration: int = DEFAULT_CORROBORATION
    transforms: bool = True
    dispute_origins: int = DEFAULT_DISPUTE_ORIGINS
    corroborating: Mapping[str, int] = field(default_factory=lambda: CORROBORATING)

    @classmethod
    def from_config(cls, config: MatchConfig) -> Policy:
        return cls(config.corroboration, config.transforms, config.dispute_origins,
                   MappingProxyType({**CORROBORATING, **config.corroborating}))

    def stricter(self, corroboration: int | None, transforms: bool | None,
                 path: str = "policy") -> Policy:
        """This policy as a query asked to tighten it. Loosening is an error, not ignored:
        a platform that asked for a looser rule than the node's must learn it did not get it."""
        result = self
        if corroboration is not None:
            if corroboration < self.corroboration:
                raise SchemaError(f"corroboration {corroboration} is looser than this node's "
                                  f"{self.corroboration}; a query may only make it stricter",
                                  f"{path}.corroboration")
            result = replace(result, corroboration=corroboration)
        if transforms is not None:
            if transforms and not self.transforms:
                raise SchemaError("this node does not count flips, rotations or trimmed margins "
                                  "as a match; a query may only make it stricter",
                                  f"{path}.transforms")
            result = replace(result, transforms=transforms)
        return result

    def to_json(self) -> dict[str, object]:
        """The policy as answers show it (built once: every answer carries it)."""
        shown: dict[str, object] | None = self.__dict__.get("_json")
        if shown is None:
            shown = {"corroboration": self.corroboration, "transforms": self.transforms,
                     "dispute_origins": self.dispute_origins,
                     "corroborating": dict(self.corroborating)}
            object.__setattr__(self, "_json", shown)
        return shown


@dataclass(frozen=True)
class Hit:
    """One query hash within threshold of one stored hash of an item."""

    hash_type: str
    distance: int
    threshold: int
    transform: str = ORIGINAL


def item_verdict(hits: Iterable[Hit], policy: Policy) -> str:
    """``match`` or ``weak`` for the hits on one stored item (``disputed`` is applied after,
    by ``dispute_state``). An item with no hits is not in an answer at all."""
    short_types = set()
    weak = False
    for hit in hits:
        if hit.hash_type in SHORT_TYPES:
            weak = True
            if hit.distance <= policy.corroborating.get(hit.hash_type, hit.threshold):
                short_types.add(SHORT_FAMILIES[hit.hash_type])
        elif hit.hash_type == "pdq" and hit.transform != ORIGINAL and not policy.transforms:
            weak = True
        elif get_hash_type(hit.hash_type).exact or hit.hash_type == "pdq":
            return "match"
        else:  # a perceptual type this policy does not know: never enough on its own
            weak = True
    if len(short_types) >= policy.corroboration:
        return "match"
    return "weak" if weak else "none"


@dataclass(frozen=True)
class DisputeState:
    disputed: bool
    not_ncii: tuple[str, ...]  # the trusted origins whose standing verdict is not_ncii
    confirmed_by_origin: bool


def standing_verdicts(feedback: Mapping[str, Mapping[str, str]], record: str, item: int
                      ) -> dict[str, str]:
    """Each origin's standing verdict on one item: on the item ref, else on its record."""
    merged = dict(feedback.get(record, {}))
    merged.update(feedback.get(f"{record}/{item}", {}))
    return merged


def dispute_state(verdicts: Mapping[str, str], item_origin: str, frozen: Iterable[str],
                  policy: Policy) -> DisputeState:
    """Whether the standing verdicts on an item (origin -> verdict) quarantine it."""
    excluded = set(frozen)
    not_ncii = tuple(sorted(o for o, v in verdicts.items()
                            if v == "not_ncii" and o not in excluded))
    confirmed = verdicts.get(item_origin) == "confirmed"
    return DisputeState(len(not_ncii) >= policy.dispute_origins and not confirmed,
                        not_ncii, confirmed)


def final_verdict(verdict: str, dispute: DisputeState) -> str:
    """``match`` becomes ``disputed`` when quarantined; a weaker verdict stays as it is."""
    return "disputed" if verdict == "match" and dispute.disputed else verdict


def strongest(verdicts: Iterable[str]) -> str:
    """The answer's top-level verdict: the strongest of its items', ``none`` if none."""
    return max(verdicts, key=_RANK.__getitem__, default="none")


def is_match(verdict: str) -> bool:
    return verdict == "match"

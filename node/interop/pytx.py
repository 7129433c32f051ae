"""A python-threatexchange extension: a hashmesh node as a ``SignalExchangeAPI``.

Why: Meta's Hasher-Matcher-Actioner (HMA), ROOST's Coop and the ``threatexchange`` CLI all
fetch hashes through pytx's ``SignalExchangeAPI``; with this module a platform that runs them
follows a node without writing code::

    pip install 'hashmesh[pytx]'
    threatexchange config extensions add hashmesh.node.interop.pytx
    export TX_HASHMESH_TOKEN=hm_...            # or put it in ~/.tx_hashmesh_token
    threatexchange config collab edit hashmesh my-node --create --node-url http://127.0.0.1:8470
    threatexchange fetch && threatexchange match photo upload.jpg

How it maps:

- ``fetch_iter`` pages through the node's change feed (``GET /v1/changes``); the checkpoint
  is the feed's cursor, so a fetch resumes exactly where the last one stopped.
- Updates are keyed by item (``<record id>/<item>``), not by hash: two items that share a hash
  are two keys, and withdrawing one does not delete the other's signal. A revoked, expired
  or quarantined item (the node's verdict policy holds it ``disputed``: ``not_ncii`` from
  enough origins), or any other change that takes an item out of force, comes as ``None``, so
  pytx and HMA delete it; a later verdict that lifts the quarantine brings it back. pytx's
  own StopNCII exchange never deletes withdrawn hashes: it compares the
  hash *value* with a status.
- Signal types: ``pdq``, and our ``md5`` and ``sha256`` (digests of the file bytes) as pytx's
  ``video_md5`` and ``video_sha256``, the only file-digest types pytx has (StopNCII maps MD5
  the same way). The other perceptual hashes (phash, dhash, ...) have no pytx type and are
  left out.
- ``report_opinion`` writes back: a false positive (``NEGATIVE_CLASS``) becomes a signed
  ``not_ncii`` feedback record on the node, a true positive ``confirmed``, on every item of the
  collaboration's lists that holds that exact hash. The token needs ``read`` and ``write``.

pytx is an optional dependency (the ``pytx`` extra): importing this module without it fails
with a message that says what to install.
"""

# No ``from __future__ import annotations``: pytx's CLI reads the config dataclass's field
# types at runtime to build its command line options.
import logging
import typing as t
import urllib.parse
from dataclasses import dataclass, field

from hashmesh.node.cli.client import ClientError, LocalClient

try:
    from threatexchange.exchanges import auth, signal_exchange_api
    from threatexchange.exchanges import fetch_state as state
    from threatexchange.exchanges.collab_config import CollaborationConfigWithDefaults
    from threatexchange.extensions.manifest import ThreatExchangeExtensionManifest
    from threatexchange.signal_type.md5 import VideoMD5Signal
    from threatexchange.signal_type.pdq.signal import PdqSignal
    from threatexchange.signal_type.sha256 import VideoSHA256Signal
    from threatexchange.signal_type.signal_base import SignalType
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("hashmesh.node.interop.pytx needs python-threatexchange: "
                      "pip install 'hashmesh[pytx]'") from exc

log = logging.getLogger("hashmesh.interop.pytx")

API_NAME = "hashmesh"
PAGE_SIZE = 1000
# our hash type -> pytx signal type
SIGNAL_TYPES: dict[str, type[SignalType]] = {
    "pdq": PdqSignal, "md5": VideoMD5Signal, "sha256": VideoSHA256Signal}
SIGNAL_NAMES = {ours: signal.get_name() for ours, signal in SIGNAL_TYPES.items()}  # cached:
# pytx derives a name from the class name with regular expressions at every call
OUR_TYPES = {name: ours for ours, name in SIGNAL_NAMES.items()}
# what a pytx opinion becomes on the node
VERDICTS = {state.SignalOpinionCategory.NEGATIVE_CLASS: "not_ncii",
            state.SignalOpinionCategory.POSITIVE_CLASS: "confirmed"}


@dataclass
class HashmeshCredentials(auth.CredentialHelper):
    """The node's API token (``hashmesh init`` prints one; scopes read, and write for
    ``report_opinion``), from ``TX_HASHMESH_TOKEN`` or ``~/.tx_hashmesh_token``."""

    ENV_VARIABLE: t.ClassVar[str] = "TX_HASHMESH_TOKEN"
    FILE_NAME: t.ClassVar[str] = "~/.tx_hashmesh_token"

    token: str

    @classmethod
    def _from_str(cls, s: str) -> "HashmeshCredentials":
        return cls(s.strip())

    def _are_valid(self) -> bool:
        return bool(self.token) and " " not in self.token


@dataclass
class _RequiredFields:
    node_url: str = field(metadata={
        "help": "the node's local API, e.g. http://127.0.0.1:8470", "metavar": "URL"})


@dataclass
class HashmeshCollabConfig(CollaborationConfigWithDefaults, _RequiredFields):
    """One node, and optionally which of its lists and labels to take."""

    api: str = field(init=False, default=API_NAME)
    lists: set[str] = field(default_factory=set, metadata={
        "help": "only items of these lists (default: every list the node holds)"})
    labels: set[str] = field(default_factory=set, metadata={
        "help": "only items with at least one of these labels (default: all)"})


@dataclass
class HashmeshCheckpoint(state.FetchCheckpointBase):
    """The feed cursor after the last change fetched, and that change's time (s)."""

    cursor: str
    updated_at: int = 0

    def get_progress_timestamp(self) -> int | None:
        return self.updated_at or None


@dataclass
class HashmeshItem:
    """One item as fetched: its hashes by pytx signal type name, and where it came from."""

    item: str
    origin: str
    list_name: str
    hashes: dict[str, str]
    labels: list[str] = field(default_factory=list)
    verdicts: dict[str, int] = field(default_factory=dict)


@dataclass
class HashmeshSignalMetadata(state.FetchedSignalMetadata):
    """What a match on a signal says: the items that hold it, their labels and verdicts."""

    items: list[str]
    labels: set[str] = field(default_factory=set)
    verdicts: dict[str, int] = field(default_factory=dict)

    def get_as_opinions(self) -> t.Sequence[state.SignalOpinion]:
        # items on a node's lists are reported NCII; federation-wide verdicts can dispute it
        opinions = [state.SignalOpinion(False, state.SignalOpinionCategory.POSITIVE_CLASS,
                                        set(self.labels))]
        if self.verdicts.get("not_ncii", 0) > self.verdicts.get("confirmed", 0):
            opinions.append(state.SignalOpinion(
                False, state.SignalOpinionCategory.NEGATIVE_CLASS, {"not_ncii"}))
        return opinions


class HashmeshSignalExchangeAPI(
    auth.SignalExchangeWithAuth[HashmeshCollabConfig, HashmeshCredentials],
    signal_exchange_api.SignalExchangeAPI[
        HashmeshCollabConfig, HashmeshCheckpoint, HashmeshSignalMetadata, str, HashmeshItem],
):
    """Fetches a hashmesh node's lists through its change feed; writes opinions back."""

    def __init__(self, collab: HashmeshCollabConfig, client: LocalClient) -> None:
        self.collab = collab
        self.client = client

    @classmethod
    def get_name(cls) -> str:
        return API_NAME

    @staticmethod
    def get_config_cls() -> type[HashmeshCollabConfig]:
        return HashmeshCollabConfig

    @staticmethod
    def get_checkpoint_cls() -> type[HashmeshCheckpoint]:
        return HashmeshCheckpoint

    @staticmethod
    def get_record_cls() -> type[HashmeshSignalMetadata]:
        return HashmeshSignalMetadata

    @staticmethod
    def get_credential_cls() -> type[HashmeshCredentials]:
        return HashmeshCredentials

    @classmethod
    def for_collab(cls, collab: HashmeshCollabConfig,
                   credentials: HashmeshCredentials | None = None
                   ) -> "HashmeshSignalExchangeAPI":
        credentials = credentials or HashmeshCredentials.get(cls)
        return cls(collab, LocalClient(collab.node_url, credentials.token))

    def fetch_iter(self, supported_signal_types: t.Sequence[type[SignalType]],
                   checkpoint: HashmeshCheckpoint | None
                   ) -> t.Iterator[state.FetchDelta[str, HashmeshItem, HashmeshCheckpoint]]:
        """A delta per feed page, until the feed has nothing more."""
        cursor = checkpoint.cursor if checkpoint is not None else "0"
        updated_at = checkpoint.updated_at if checkpoint is not None else 0
        filters = [("limit", str(PAGE_SIZE)), *(("list", name) for name in
                                                sorted(self.collab.lists))]
        while True:
            query = urllib.parse.urlencode([("after", cursor), *filters])
            page = self.client.call("GET", f"/v1/changes?{query}")
            updates: dict[str, HashmeshItem | None] = {}
            for change in page["changes"]:
                updates[change["item"]] = self._value(change)
                updated_at = change["at"] // 1000
            cursor = page["next"]
            yield state.FetchDelta(updates, HashmeshCheckpoint(cursor, updated_at))
            if not page["more"]:
                return

    def _value(self, change: dict[str, t.Any]) -> HashmeshItem | None:
        """The item's new value, or None to delete it: any change but an add or a verdict
        (revoke, expire, and kinds a newer node may add), or an item no longer in force or
        quarantined."""
        if (change["kind"] not in ("add", "verdict") or not change.get("in_force", True)
                or change.get("quarantined", False)):
            return None
        if self.collab.labels and not self.collab.labels & set(change["labels"]):
            return None
        hashes = {SIGNAL_NAMES[h["type"]]: h["value"] for h in change["hashes"]
                  if h["type"] in SIGNAL_NAMES}
        if not hashes:
            return None
        return HashmeshItem(change["item"], change["origin"], change["list"], hashes,
                            list(change["labels"]), dict(change["verdicts"]))

    @classmethod
    def naive_convert_to_signal_type(
            cls, signal_types: t.Sequence[type[SignalType]], collab: HashmeshCollabConfig,
            fetched: t.Mapping[str, HashmeshItem],
    ) -> dict[type[SignalType], dict[str, HashmeshSignalMetadata]]:
        """Items to ``{signal type: {hash: metadata}}``; items sharing a hash are merged."""
        by_name = {signal.get_name(): signal for signal in signal_types}
        result: dict[type[SignalType], dict[str, HashmeshSignalMetadata]] = {}
        for value in fetched.values():
            if value is None:
                continue
            for name, signal in value.hashes.items():
                signal_type = by_name.get(name)
                if signal_type is None:
                    continue
                found = result.setdefault(signal_type, {})
                meta = found.get(signal)
                if meta is None:
                    meta = found[signal] = HashmeshSignalMetadata([])
                meta.items.append(value.item)
                meta.labels.update(value.labels)
                for verdict, n in value.verdicts.items():
                    meta.verdicts[verdict] = meta.verdicts.get(verdict, 0) + n
        return result

    def report_opinion(self, s_type: type[SignalType], signal: str,
                       opinion: state.SignalOpinion) -> None:
        """Record the platform's verdict on every item in the collab's lists holding
        exactly this hash, as feedback signed by the node."""
        verdict = VERDICTS.get(opinion.category)
        ours = OUR_TYPES.get(s_type.get_name())
        if verdict is None or ours is None:
            raise NotImplementedError(
                f"hashmesh takes true and false positives on {', '.join(OUR_TYPES)} hashes")
        query: dict[str, t.Any] = {"hashes": [{"type": ours, "value": signal}],
                                   "thresholds": {ours: 0}}
        if self.collab.lists:
            query["lists"] = sorted(self.collab.lists)
        [result] = self.client.call("POST", "/v1/match", body=query)["results"]
        items = sorted({m["item"] for m in result["matches"]})
        if not items:
            raise ClientError(f"no item of this node holds that {ours} hash", "NOT_FOUND", 404)
        for ref in items:
            self.client.call("POST", "/v1/feedback", body={"target": ref, "verdict": verdict})
        log.info("reported %s on %d item(s) at %s", verdict, len(items), self.collab.node_url)


TX_MANIFEST = ThreatExchangeExtensionManifest(apis=(HashmeshSignalExchangeAPI,))

__all__ = ["TX_MANIFEST", "HashmeshSignalExchangeAPI", "HashmeshCollabConfig",
           "HashmeshCredentials", "HashmeshCheckpoint", "HashmeshItem",
           "HashmeshSignalMetadata"]

"""Items that differ only in their one hash's value, kept as one column of values.

A bulk add (``hashmesh add --from``) sends thousands of items that share everything but the
hash value: the same list, tier, labels and expiry, one hash of one type, no quality. Read
item by item, each became an ``Item`` and a ``HashEntry``, was checked again for that
sameness before it was stored, and was measured for the split into records: ~4 µs a hash of
a node's ~15 (bench/RESULTS.md, "fourth pass"). An ``ItemRun`` keeps the shared text once and
the values as one list from the request to the store and the index. Its canonical text is
one ``join``; ``Item`` objects are built only when something indexes or iterates it (the
generic paths), so it is a ``Sequence[Item]`` like any tuple of items and compares equal to
one with the same items.

``read_item_run`` is the only way to make one from text: it accepts a region only if it is
exactly the canonical text of its items, every one valid, so a run always stands for items
the strict schema accepts (tests/protocol/test_item_runs.py holds it to
``read_canonical_items`` and ``Item.from_json``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import overload

from hashmesh.protocol.hashtypes import HASH_TYPES
from hashmesh.protocol.records import HashEntry, Item, read_canonical_items

_VALUE_KEY = '"value":"'


class ItemRun(Sequence[Item]):
    """Items equal to ``template`` but for their one hash's value, one value each.

    ``before`` and ``after`` are the canonical text of an item around its value, so item
    ``i`` is written ``before + values[i] + after``. Only ``read_item_run`` builds one from
    outside (the template encoder writes a run's text without checking it again); slicing
    gives a run of the slice's values.
    """

    __slots__ = ("after", "before", "template", "values")

    def __init__(self, template: Item, before: str, after: str, values: list[str]) -> None:
        self.template = template
        self.before = before
        self.after = after
        self.values = values

    @property
    def hash_type(self) -> str:
        return self.template.hashes[0].type

    @property
    def item_size(self) -> int:
        """Characters of one item's canonical text (all items have the same)."""
        return len(self.before) + len(self.values[0]) + len(self.after) if self.values else 0

    def text(self) -> str:
        """The items' canonical text, comma-separated: what an ``add`` body's array holds."""
        return self.before + (self.after + "," + self.before).join(self.values) + self.after

    def __len__(self) -> int:
        return len(self.values)

    @overload
    def __getitem__(self, index: int) -> Item: ...

    @overload
    def __getitem__(self, index: slice) -> ItemRun: ...

    def __getitem__(self, index: int | slice) -> Item | ItemRun:
        if isinstance(index, slice):
            return ItemRun(self.template, self.before, self.after, self.values[index])
        return self._item(self.values[index])

    def __iter__(self) -> Iterator[Item]:
        return map(self._item, self.values)

    def _item(self, value: str) -> Item:
        template = self.template
        return Item(hashes=(HashEntry(template.hashes[0].type, value),), list=template.list,
                    labels=template.labels, tier=template.tier, expires=template.expires)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ItemRun):
            return (self.values == other.values and self.template.list == other.template.list
                    and (self.before, self.after) == (other.before, other.after))
        if isinstance(other, Sequence) and not isinstance(other, (str, bytes)):
            return tuple(self) == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"ItemRun({self.template!r}, {len(self.values)} values)"


def read_item_run(region: str) -> ItemRun | None:
    """The items of ``region`` as a run, if it is nothing but comma-separated canonical
    items that differ only in their one hash's value (of a hex type, no quality); else
    ``None`` (the caller reads it item by item).

    The first item is read and checked as any canonical item (``read_canonical_items``);
    the rest are taken as values at fixed steps, checked as lowercase hex of the type's
    width, and the region must then equal the run's own text character for character.
    """
    start = region.find(_VALUE_KEY) + len(_VALUE_KEY)
    if start < len(_VALUE_KEY):
        return None
    before = region[:start]
    second = region.find("," + before, start)
    if second < 0:  # no second item like the first: not a run (read item by item, once)
        return None
    first_text = region[:second]
    first = read_canonical_items(first_text)
    if first is None or len(first) != 1:
        return None
    [template] = first
    if len(template.hashes) != 1 or template.hashes[0].quality is not None:
        return None
    entry = template.hashes[0]
    width = getattr(HASH_TYPES.get(entry.type), "hex_chars", None)
    if not isinstance(width, int) or first_text[start:start + width] != entry.value:
        return None
    after = first_text[start + width:]
    step = len(first_text) + 1
    if (len(region) + 1) % step:
        return None
    values = [region[at:at + width] for at in range(start, len(region), step)]
    if not _lower_hex("".join(values)):
        return None
    run = ItemRun(template, before, after, values)
    return run if run.text() == region else None


def _lower_hex(text: str) -> bool:
    """Whether ``text`` is lowercase hex digits only, of even length: ``bytes.fromhex``
    refuses other characters but skips spaces, which the round trip then shows (a regular
    expression's character class took ~5 times longer)."""
    try:
        return bytes.fromhex(text).hex() == text
    except ValueError:
        return False

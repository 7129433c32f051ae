"""Match quality on real photographs: recall per kind of re-upload, false positives among photos.

Why (issue 11): thresholds chosen on a few resized copies let one photo's caption-barred copy
match another photo's record, and missed every flipped, rotated or padded re-upload. This bench
is the measurement behind the verdict policy (``node/matching/verdicts.py``), the image-query
variants (``node/matching/image_query.py``) and the margins stated in ``protocol/hashtypes.py``.

    python -m bench.quality_bench            # all photos, all variants (~1 min on 2 cores)
    python -m bench.quality_bench --margins  # also the distance margins of every hash type
    python -m bench.quality_bench --captions # also 36 caption styles per photo (~2 min)

Photos: the real photographs among scikit-image's sample data and scikit-learn's two sample
images (``PHOTOS``); no synthetic, text or texture images. Each photo is one stored item holding
all its hashes (of the photo saved losslessly). Each variant is hashed as a platform's image
query would be, and compared with every stored item by brute force, with the node's default
thresholds:

- **PDQ alone**: the variant's own PDQ within 31 of an item's PDQ.
- **policy**: every hash the image query looks up (own hashes, 8 dihedral PDQ, trimmed margin),
  turned into a verdict by the node's policy. Recall counts ``match`` on the photo's own item.

A false positive is a variant of one photo that gets the counted verdict on another photo's
item. Nothing is written to disk.

``--captions`` asks whether the caption search is general rather than fitted to the two
caption variants above: bars of 6, 12 and 20% of the height, above and below, black with white
text, white with black, dark grey with yellow, one or two centred lines, saved as JPEG q90 and
q60 (``CAPTION_STYLES``).
"""

from __future__ import annotations

import argparse
import importlib.util
import io
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

from hashmesh.node.matching.hasher import hash_image
from hashmesh.node.matching.image_query import QueryHash, hash_image_query
from hashmesh.node.matching.verdicts import Hit, Policy, item_verdict
from hashmesh.protocol.hashtypes import get_hash_type

# motorcycle_left/right: two cameras, one scene (a stereo pair), so distinct photos that are
# close. No drawings: horse.png is a silhouette, text/logo/chessboard are not photographs.
SKIMAGE_PHOTOS = ("astronaut", "camera", "coffee", "chelsea", "rocket", "motorcycle_left",
                  "motorcycle_right", "hubble_deep_field", "retina", "moon", "coins",
                  "immunohistochemistry", "cell", "page", "grass", "gravel", "brick",
                  "clock_motion")
SKIMAGE_FILES = {"immunohistochemistry": "ihc.png", "hubble_deep_field": "hubble_deep_field.jpg",
                 "retina": "retina.jpg", "rocket": "rocket.jpg"}
SKLEARN_PHOTOS = ("china", "flower")
PERCEPTUAL = ("pdq", "phash", "dhash", "ahash", "whash")
KINDS = ("resize", "thumbnail", "jpeg", "brightness", "contrast", "caption", "watermark",
         "grayscale", "webp", "flip", "rotate", "padding", "crop")
TARGETS = {"flip": 0.85, "rotate": 0.85, "padding": 0.85, "crop": None}


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{name} is not installed (pip install -e '.[test]')")
    return Path(next(iter(spec.submodule_search_locations)))


def photos() -> list[tuple[str, Image.Image]]:
    """The sample photographs as RGB images, scikit-image's then scikit-learn's."""
    found = []
    skimage = _package_dir("skimage") / "data"
    for name in SKIMAGE_PHOTOS:
        path = skimage / SKIMAGE_FILES.get(name, f"{name}.png")
        found.append((name, Image.open(path).convert("RGB")))
    sklearn = _package_dir("sklearn") / "datasets" / "images"
    for name in SKLEARN_PHOTOS:
        found.append((name, Image.open(sklearn / f"{name}.jpg").convert("RGB")))
    return found


def encode(image: Image.Image, fmt: str = "JPEG", quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, quality=quality) if fmt != "PNG" else image.save(buffer, fmt)
    return buffer.getvalue()


def _caption(image: Image.Image, top: bool) -> Image.Image:
    """A meme-style bar of 12% of the height with text, above or below the picture."""
    bar = max(12, image.height * 12 // 100)
    canvas = Image.new("RGB", (image.width, image.height + bar), "black" if top else "white")
    canvas.paste(image, (0, bar if top else 0))
    font = ImageFont.load_default(size=max(8, bar * 6 // 10))
    ImageDraw.Draw(canvas).text((bar // 3, (0 if top else image.height) + bar // 6),
                                "when you see it lol", fill="white" if top else "black",
                                font=font)
    return canvas


def _styled_caption(image: Image.Image, share: float, top: bool, bar_colour: str,
                    text_colour: str, lines: int) -> Image.Image:
    """A bar of ``share`` of the height with ``lines`` centred lines of text."""
    bar = max(12, int(image.height * share))
    canvas = Image.new("RGB", (image.width, image.height + bar), bar_colour)
    canvas.paste(image, (0, bar if top else 0))
    font = ImageFont.load_default(size=max(8, int(bar * 0.6 / lines)))
    draw = ImageDraw.Draw(canvas)
    start = 0 if top else image.height
    for line in range(lines):
        draw.text((image.width // 2, start + bar * (line + 1) // (lines + 1)),
                  ("when you see it", "lol")[line % 2], fill=text_colour, font=font, anchor="mm")
    return canvas


CaptionStyle = tuple[float, bool, str, str, int]
CAPTION_STYLES: tuple[CaptionStyle, ...] = tuple(
    (share, top, bar, text, lines)
    for share in (0.06, 0.12, 0.2) for top in (True, False)
    for bar, text in (("black", "white"), ("white", "black"), ("#202020", "yellow"))
    for lines in (1, 2))


def _watermark(image: Image.Image) -> Image.Image:
    """A small semi-transparent text mark in the bottom right corner (about 1/5 of the width)."""
    marked = image.convert("RGBA")
    layer = Image.new("RGBA", marked.size, (0, 0, 0, 0))
    size = max(8, image.width // 25)
    ImageDraw.Draw(layer).text((image.width * 3 // 4, image.height - 2 * size), "@uploader",
                               fill=(255, 255, 255, 160), font=ImageFont.load_default(size=size))
    return Image.alpha_composite(marked, layer).convert("RGB")


def _pad(image: Image.Image, scale: float, colour: str, offset: float) -> Image.Image:
    canvas = Image.new("RGB", (int(image.width * scale), int(image.height * scale)), colour)
    canvas.paste(image, (int((canvas.width - image.width) * offset),
                         int((canvas.height - image.height) * (1 - offset))))
    return canvas


def _crop(image: Image.Image, share: float) -> Image.Image:
    dx, dy = int(image.width * share), int(image.height * share)
    return image.crop((dx, dy, image.width - dx, image.height - dy))


def _resize(image: Image.Image, scale: float) -> Image.Image:
    return image.resize((max(1, int(image.width * scale)), max(1, int(image.height * scale))),
                        Image.Resampling.LANCZOS)


def _thumbnail(image: Image.Image, side: int) -> Image.Image:
    thumb = image.copy()
    thumb.thumbnail((side, side))
    return thumb


Variant = tuple[str, str, Callable[[Image.Image], bytes]]
VARIANTS: tuple[Variant, ...] = (
    ("resize", "50%", lambda im: encode(_resize(im, 0.5))),
    ("resize", "75%", lambda im: encode(_resize(im, 0.75))),
    ("resize", "150%", lambda im: encode(_resize(im, 1.5))),
    ("thumbnail", "256px", lambda im: encode(_thumbnail(im, 256), quality=80)),
    ("thumbnail", "160px", lambda im: encode(_thumbnail(im, 160), quality=80)),
    ("jpeg", "q40", lambda im: encode(im, quality=40)),
    ("jpeg", "q60", lambda im: encode(im, quality=60)),
    ("jpeg", "q85", lambda im: encode(im, quality=85)),
    ("brightness", "x0.7", lambda im: encode(ImageEnhance.Brightness(im).enhance(0.7))),
    ("brightness", "x1.3", lambda im: encode(ImageEnhance.Brightness(im).enhance(1.3))),
    ("contrast", "x0.7", lambda im: encode(ImageEnhance.Contrast(im).enhance(0.7))),
    ("contrast", "x1.4", lambda im: encode(ImageEnhance.Contrast(im).enhance(1.4))),
    ("caption", "white bar below", lambda im: encode(_caption(im, top=False))),
    ("caption", "black bar above", lambda im: encode(_caption(im, top=True))),
    ("watermark", "corner text", lambda im: encode(_watermark(im))),
    ("grayscale", "L", lambda im: encode(ImageOps.grayscale(im))),
    ("webp", "q75", lambda im: encode(im, "WEBP", 75)),
    ("webp", "q50", lambda im: encode(im, "WEBP", 50)),
    ("flip", "horizontal", lambda im: encode(ImageOps.mirror(im))),
    ("rotate", "90", lambda im: encode(im.transpose(Image.Transpose.ROTATE_90))),
    ("rotate", "180", lambda im: encode(im.transpose(Image.Transpose.ROTATE_180))),
    ("rotate", "270", lambda im: encode(im.transpose(Image.Transpose.ROTATE_270))),
    ("padding", "white 1.3x centred", lambda im: encode(_pad(im, 1.3, "white", 0.5))),
    ("padding", "black 1.6x corner", lambda im: encode(_pad(im, 1.6, "black", 0.2))),
    ("padding", "grey 2x centred", lambda im: encode(_pad(im, 2.0, "#808080", 0.5))),
    ("crop", "2%", lambda im: encode(_crop(im, 0.02))),
    ("crop", "5%", lambda im: encode(_crop(im, 0.05))),
    ("crop", "10%", lambda im: encode(_crop(im, 0.10))),
)


@dataclass
class Stored:
    name: str
    hashes: dict[str, str]


@dataclass
class Outcome:
    """One variant of one photo against every stored photo."""

    photo: str
    kind: str
    label: str
    pdq_alone: set[str]  # stored photos within PDQ 31 of the variant's own PDQ
    verdicts: dict[str, str]  # stored photo -> policy verdict (weak or match)
    own_distances: dict[str, int]  # type -> distance of the variant's own hash to its photo
    other_distances: dict[str, int]  # type -> least distance of it to another photo's


def store(images: list[tuple[str, Image.Image]]) -> list[Stored]:
    return [Stored(name, {h.type: h.value for h in hash_image(encode(image, "PNG"))
                          if h.type in PERCEPTUAL}) for name, image in images]


def judge(queries: list[QueryHash], stored: list[Stored], policy: Policy
          ) -> dict[str, str]:
    """The node's verdict for each stored photo that any query hash hit (brute force)."""
    found = {}
    for item in stored:
        hits = []
        for query in queries:
            if query.type in item.hashes:
                kind = get_hash_type(query.type)
                distance = kind.distance(query.value, item.hashes[query.type])
                if distance <= kind.default_threshold:
                    hits.append(Hit(query.type, distance, kind.default_threshold,
                                    query.transform))
        verdict = item_verdict(hits, policy) if hits else "none"
        if verdict != "none":
            found[item.name] = verdict
    return found


def run(images: list[tuple[str, Image.Image]], policy: Policy) -> tuple[list[Stored],
                                                                        list[Outcome]]:
    stored = store(images)
    by_name = {s.name: s for s in stored}
    outcomes = []
    for name, image in images:
        for kind, label, make in VARIANTS:
            own, queries = hash_image_query(make(image))
            values = {h.type: h.value for h in own}
            pdq = get_hash_type("pdq")
            alone = {s.name for s in stored if pdq.distance(values["pdq"], s.hashes["pdq"]) <= 31}
            own_distances = {t: get_hash_type(t).distance(values[t], by_name[name].hashes[t])
                             for t in PERCEPTUAL}
            other_distances = {t: min(get_hash_type(t).distance(values[t], s.hashes[t])
                                      for s in stored if s.name != name) for t in PERCEPTUAL}
            outcomes.append(Outcome(name, kind, label, alone, judge(queries, stored, policy),
                                    own_distances, other_distances))
    return stored, outcomes


def quality_table(outcomes: list[Outcome]) -> Iterator[str]:
    """Recall and false positives per kind, PDQ alone next to the policy."""
    yield ("| kind | variants | recall PDQ alone | recall policy (match) | own photo weak | "
           "FP PDQ alone | FP policy match | FP policy weak |")
    yield "|---|---|---|---|---|---|---|---|"
    rows: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        rows[outcome.kind].append(outcome)
    totals = [0] * 7
    for kind in KINDS:
        group = rows[kind]
        counts = [
            len(group),
            sum(o.photo in o.pdq_alone for o in group),
            sum(o.verdicts.get(o.photo) == "match" for o in group),
            sum(o.verdicts.get(o.photo) == "weak" for o in group),
            sum(len(o.pdq_alone - {o.photo}) for o in group),
            sum(v == "match" for o in group for p, v in o.verdicts.items() if p != o.photo),
            sum(v == "weak" for o in group for p, v in o.verdicts.items() if p != o.photo),
        ]
        totals = [a + b for a, b in zip(totals, counts, strict=True)]
        n = counts[0]
        yield (f"| {kind} | {n} | {counts[1] / n:.0%} | {counts[2] / n:.0%} | {counts[3]} | "
               f"{counts[4]} | {counts[5]} | {counts[6]} |")
    n = totals[0]
    yield (f"| **all** | {n} | {totals[1] / n:.0%} | {totals[2] / n:.0%} | {totals[3]} | "
           f"{totals[4]} | {totals[5]} | {totals[6]} |")


def margins_table(stored: list[Stored], outcomes: list[Outcome]) -> Iterator[str]:
    """Per type and kind, how far a variant's own hash moved from its photo's (max), and how
    close the stored photos and any variant came to another photo's (min)."""
    kinds = [k for k in KINDS if k not in ("flip", "rotate", "padding")]
    yield ("| type | threshold | " + " | ".join(kinds) +
           " | distinct photos, min | variant to another photo, min |")
    yield "|---|---|" + "---|" * len(kinds) + "---|---|"
    for hash_type in PERCEPTUAL:
        kind = get_hash_type(hash_type)
        moved = [max(o.own_distances[hash_type] for o in outcomes if o.kind == k)
                 for k in kinds]
        pairs = min(kind.distance(a.hashes[hash_type], b.hashes[hash_type])
                    for i, a in enumerate(stored) for b in stored[i + 1:])
        other = min(o.other_distances[hash_type] for o in outcomes)
        yield (f"| {hash_type} | {kind.default_threshold} | "
               + " | ".join(str(m) for m in moved) + f" | {pairs} | {other} |")


def caption_table(images: list[tuple[str, Image.Image]], stored: list[Stored],
                  policy: Policy) -> Iterator[str]:
    """Recall (verdict ``match`` on the photo's own item) and false positives with ``match``
    over ``CAPTION_STYLES``, per bar height and colours, at two JPEG qualities."""
    counts: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    misses = []
    for name, image in images:
        for style in CAPTION_STYLES:
            share, top, bar, text, lines = style
            for quality in (90, 60):
                data = encode(_styled_caption(image, *style), quality=quality)
                _, queries = hash_image_query(data)
                verdicts = judge(queries, stored, policy)
                row = counts[(quality, f"{share:.0%} {bar}/{text}")]
                row[0] += 1
                row[1] += verdicts.get(name) == "match"
                row[2] += sum(v == "match" for p, v in verdicts.items() if p != name)
                if verdicts.get(name) != "match":
                    misses.append(f"{name} q{quality} {share:.0%} {'above' if top else 'below'} "
                                  f"{bar}/{text} {lines} line(s): {verdicts.get(name)}")
    yield "| JPEG | bar, colours | variants | recall policy (match) | FP policy match |"
    yield "|---|---|---|---|---|"
    for (quality, group), (n, hit, fp) in sorted(counts.items(), key=lambda kv: -kv[0][0]):
        yield f"| q{quality} | {group} | {n} | {hit / n:.0%} | {fp} |"
    n, hit, fp = (sum(row[i] for row in counts.values()) for i in range(3))
    yield f"| **all** | | {n} | {hit / n:.0%} ({hit}) | {fp} |"
    yield from (f"miss: {miss}" for miss in misses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--margins", action="store_true",
                        help="also print how far each hash type moved (max per kind of "
                             "variant, its own hash, no transforms) and how close photos came")
    parser.add_argument("--captions", action="store_true",
                        help="also measure 36 caption styles per photo at JPEG q90 and q60")
    parser.add_argument("--list", action="store_true",
                        help="also list every variant that missed or hit another photo")
    args = parser.parse_args()
    images = photos()
    policy = Policy()
    stored, outcomes = run(images, policy)
    print(f"# match quality: {len(images)} photos x {len(VARIANTS)} variants, "
          f"policy {policy.to_json()}")
    for line in quality_table(outcomes):
        print(line)
    if args.margins:
        print()
        for line in margins_table(stored, outcomes):
            print(line)
    if args.captions:
        print()
        for line in caption_table(images, stored, policy):
            print(line)
    if args.list:
        print()
        for o in outcomes:
            others = {p: v for p, v in o.verdicts.items() if p != o.photo}
            if o.verdicts.get(o.photo) != "match" or others or o.pdq_alone - {o.photo}:
                print(f"{o.photo:22} {o.kind:10} {o.label:20} own={o.verdicts.get(o.photo)} "
                      f"others={others} pdq_alone_others={sorted(o.pdq_alone - {o.photo})} "
                      f"d={o.own_distances}")


if __name__ == "__main__":
    main()

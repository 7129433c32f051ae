"""The hashes an image query looks up: the image's own, its flips and rotations, its trimmed core.

Why (issue 11): the commonest evasions of a perceptual hash list are a horizontally flipped or
rotated re-upload and a screenshot (the picture on a uniform canvas, or with a caption bar).
PDQ moves 98-144 bits under those, as far as an unrelated image. So an image query also asks
for the PDQ of the image's 8 dihedral transforms (``pdqhash.compute_dihedral``: one DCT, the
transforms are sign flips and transposes of it, so nearly free), and, where the image has a
uniform margin, for the same 8 of the picture with the margin trimmed. A hit says which of them
matched (``transform``); the 64-bit types are looked up on the image as given only, since a
single one of them is never enough for a match (``node/matching/verdicts.py``).

``transform`` names what was done to the *query* image to obtain the hash that matched, so a
stored photo that was uploaded mirrored matches through ``flip_horizontal``; rotations are
counter-clockwise. ``trimmed`` prefixes them when the margin was cut off first
(``trimmed``, ``trimmed+rotate90``, ...).

The margin is found on a copy reduced to at most ``MARGIN_SCAN_SIDE`` px: from each edge, the
rows (or columns) in which most pixels are within ``MARGIN_TOLERANCE`` of that edge's median
colour (``margin_box``). A share below 1 lets a caption's text or JPEG ringing through; it may
also trim a strip of plain sky, which costs one extra lookup and nothing else (a query never
changes what is stored).

A caption bar of the picture's own colour (a black bar above a night sky or a fundus photo)
merges with the picture by colour. The top and bottom are therefore also read for a bar's
text (``_caption_band``): a drawn bar is flat but for its strokes, a photograph's background
is noisy, and the cut goes where the picture's content starts. It costs one more PDQ, only
where it finds a bar the colour pass placed elsewhere (``bench/quality_bench.py --captions``).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pdqhash
from PIL import Image

from hashmesh.node.matching.hasher import (
    COMPUTABLE_TYPES,
    DEFAULT_MAX_PIXELS,
    ComputedHash,
    decode_image,
    hash_decoded,
)

ORIGINAL = "original"
# compute_dihedral's order: what was done to the image to get each of its 8 hashes.
DIHEDRAL = (ORIGINAL, "rotate90", "rotate180", "rotate270", "flip_vertical", "flip_horizontal",
            "transpose", "transverse")
TRIMMED = "trimmed"
TRANSFORMS: tuple[str, ...] = DIHEDRAL + tuple(
    TRIMMED if name == ORIGINAL else f"{TRIMMED}+{name}" for name in DIHEDRAL)

# Transforms hashed from their pixels as well; Pillow's rotations are counter-clockwise.
EXACT = {
    "flip_horizontal": Image.Transpose.FLIP_LEFT_RIGHT,
    "rotate90": Image.Transpose.ROTATE_90,
    "rotate180": Image.Transpose.ROTATE_180,
    "rotate270": Image.Transpose.ROTATE_270,
}
EXTRA_SIDE = 512  # the extra hashes (transforms, trimmed) are taken on a copy this size
_EXACT_PARTS = (("flip_horizontal", "rotate90"), ("rotate180", "rotate270"))
# Image work is bounded by the callers (``Matching``'s image slots); each task transposes or
# crops a copy of at most ~1023 px a side (``_reduced``).
_TRANSFORM_THREADS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="image-transforms")

MARGIN_SCAN_SIDE = 256
MARGIN_TOLERANCE = 24  # per channel, out of 255: JPEG noise around a flat colour
CANVAS_SHARE = 0.95  # of a row's pixels near the edge colour: a canvas (strict pass)
MARGIN_SHARE = 0.6  # the same for a bar that carries text (loose pass, within the canvas)
MARGIN_BLOCK = 16  # rows read at a time
MIN_MARGIN = 0.02  # margins thinner than this share of the side are left alone
MIN_KEPT = 0.3  # never trim to less than this share of a side: that is not a margin
# A caption bar is drawn flat: after JPEG its plain rows sit within a level or two of its
# colour, where a photograph's own dark or white background carries sensor noise.
FLAT_TOLERANCE = 2  # per channel: a drawn bar away from its text
STROKE_CONTRAST = 128  # per channel: a glyph's stroke against the bar
TEXT_BACKGROUND = 0.25  # of a text row's pixels within MARGIN_TOLERANCE of the bar's colour
TEXT_STROKES = 0.01  # of a text row's pixels in strokes
JPEG_BLOCK = 16  # px: JPEG's ringing around a stroke stays within its (chroma) block
MAX_CAPTION = 0.4  # of the height: a taller band is not a caption


@dataclass(frozen=True)
class QueryHash:
    """One hash an image query looks up, and the transform of the image it was taken from."""

    type: str
    value: str
    quality: int | None
    transform: str = ORIGINAL


def hash_image_query(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS,
                     variants: bool = True) -> tuple[list[ComputedHash], list[QueryHash]]:
    """The image's own hashes (as ``hash_image`` gives them) and every hash to look up.

    ``variants=False`` looks up the image's own hashes only (the former behaviour).
    """
    image = decode_image(data, max_pixels=max_pixels)
    pixels = np.asarray(image)
    # The extra hashes are taken on other threads while this one hashes the image itself
    # (PDQ releases the GIL): the flips and rotations in two parts, the trimmed pictures.
    extra_work = ([_TRANSFORM_THREADS.submit(_exact, image, part) for part in _EXACT_PARTS]
                  + [_TRANSFORM_THREADS.submit(_trimmed, image, margin_boxes(pixels))]
                  if variants else [])
    try:
        pdqs, quality = _dihedral(pixels)
        own = hash_decoded(image, data, COMPUTABLE_TYPES, pdq=(pdqs[0], quality))
    finally:
        wait(extra_work)  # none outlives the call: the caller bounds image work in flight
    queries = [QueryHash(h.type, h.value, h.quality) for h in own]
    if not variants:
        return own, queries
    extra = [QueryHash("pdq", value, quality, transform)
             for transform, value in zip(DIHEDRAL[1:], pdqs[1:], strict=True)]
    extra += [QueryHash("pdq", value, q, transform)
              for work in extra_work for transform, value, q in work.result()]
    seen = {pdqs[0]}
    for query in extra:
        if query.value not in seen:  # a symmetric image gives some transforms the same hash
            seen.add(query.value)
            queries.append(query)
    return own, queries


def margin_boxes(pixels: npt.NDArray[np.uint8]) -> list[tuple[int, int, int, int]]:
    """Boxes (left, top, right, bottom) of the picture inside a uniform margin: the box with
    every edge's margin cut, then each edge with a bar (text) cut alone; none if the image has
    no margin.

    Why a bar alone too: a caption bar on a photo whose own top is plain sky would otherwise
    lose the sky with the bar, and the trimmed picture would no longer be the photo. A plain
    canvas needs no such second guess (each costs one PDQ). Last, a caption bar found by its
    text (``_caption_band``) at the top or bottom, unless a box already cuts that edge within
    ``MIN_MARGIN`` of it.

    Per edge, the edge colour is the median of its outermost row. A strict pass takes the rows
    with ``CANVAS_SHARE`` of their pixels near it (a canvas: a row through a picture on a wide
    canvas is still mostly canvas, so this must come first and be strict). Where that found a
    margin, a loose pass goes on through rows with ``MARGIN_SHARE`` near the same colour,
    within the columns the strict pass kept: a caption bar, whose text rows are not uniform.
    The cut is found on a reduced copy, then placed to the pixel at full size: a texture moved
    by 3 px is 30-80 PDQ bits away.
    """
    height, width = pixels.shape[:2]
    step = max(1, -(-max(height, width) // MARGIN_SCAN_SIDE))
    small = pixels[::step, ::step].astype(np.int16)
    rows, cols = small.shape[:2]
    # Only as far in as a margin may reach (the rest is picture whatever it looks like).
    reach_rows, reach_cols = int(rows * (1 - MIN_KEPT)) + 1, int(cols * (1 - MIN_KEPT)) + 1
    across = small.transpose(1, 0, 2)
    views = (small[:reach_rows], small[::-1][:reach_rows], across[:reach_cols],
             across[::-1][:reach_cols])
    colours = [np.median(view[0], axis=0).astype(np.int16) for view in views]
    strict = [_margin_run(view, CANVAS_SHARE, colour) for view, colour in zip(views, colours,
                                                                               strict=True)]
    # A side that is (nearly) uniform all the way across is background, not a margin.
    if strict[0] + strict[1] >= rows * (1 - MIN_KEPT):
        strict[0] = strict[1] = 0
    if strict[2] + strict[3] >= cols * (1 - MIN_KEPT):
        strict[2] = strict[3] = 0
    top, bottom, left, right = strict
    spans = ((left, cols - right), (left, cols - right), (top, rows - bottom),
             (top, rows - bottom))
    full = (pixels, pixels[::-1], pixels.transpose(1, 0, 2), pixels.transpose(1, 0, 2)[::-1])
    cut, barred = [], []
    for edge in range(4):
        run, share = strict[edge], CANVAS_SHARE
        lo, hi = spans[edge]
        if run:
            more = _margin_run(views[edge][run:, lo:hi], MARGIN_SHARE, colours[edge])
            run, share = run + more, (MARGIN_SHARE if more else CANVAS_SHARE)
            barred.append(edge if more else -1)
            start = max(0, (run - 1) * step)  # place the cut to the pixel
            band = full[edge][start:start + 2 * step, lo * step:hi * step].astype(np.int16)
            run = start + _margin_run(band, share, colours[edge])
        cut.append(run)
    top, bottom, left, right = cut
    limits = (height, height, width, width)
    candidates = [tuple(cut)] + [tuple(c if i == edge else 0 for i, c in enumerate(cut))
                                 for edge in barred if edge >= 0]
    for edge in (0, 1):
        caption = _caption_band(views[edge], colours[edge], int(rows * MAX_CAPTION),
                                -(-JPEG_BLOCK // step))
        if caption:
            start = (caption - 1) * step  # place the cut to the pixel, strokes around in view
            first = max(0, start - JPEG_BLOCK)
            ending = full[edge][first:start + 2 * step + JPEG_BLOCK].astype(np.int16)
            bar, stroked = _bar_rows(ending, colours[edge], JPEG_BLOCK)
            after = np.flatnonzero((~bar | stroked)[start - first:start - first + 2 * step])
            caption = start + (int(after[0]) if len(after) else 2 * step)
            if all(abs(c[edge] - caption) > MIN_MARGIN * height for c in candidates):
                candidates.append(tuple(caption if i == edge else 0 for i in range(4)))
    boxes = []
    for t, b, lft, r in candidates:
        box = (lft, t, width - r, height - b)
        kept_ok = (box[3] - box[1] >= MIN_KEPT * height and box[2] - box[0] >= MIN_KEPT * width)
        thick = any(c >= MIN_MARGIN * limit for c, limit in zip((t, b, lft, r), limits,
                                                                 strict=True))
        if kept_ok and thick and box not in boxes:
            boxes.append(box)
    return boxes


def margin_box(pixels: npt.NDArray[np.uint8]) -> tuple[int, int, int, int] | None:
    """The box with every edge's margin cut (``margin_boxes``), or None."""
    boxes = margin_boxes(pixels)
    return boxes[0] if boxes else None


def _caption_band(pixels: npt.NDArray[np.int16], colour: npt.NDArray[np.int16],
                  limit: int, radius: int) -> int:
    """How many leading rows of ``pixels`` (top or bottom first) form a caption bar, found by
    its text where its colour cannot tell it from the picture (a black bar above a night sky
    or a fundus photo); 0 if they do not. ``radius``: ``JPEG_BLOCK`` in these pixels.

    The rows from the edge are the bar's (``_bar_rows``), plain or with strokes, up to the
    first that is not (a photograph's noise) or ``limit``. A bar starts plain, and its text is
    runs of stroked rows each followed by plain rows. It ends where its last plain run does:
    before a row that is not the bar's, or before stroked rows that run on to that row or to
    ``limit`` (a picture's own plain edge and then its bright content, which the bar's padding
    and the picture's own black cannot be told apart by, so the cut is at the content).
    """
    edge = np.abs(pixels[0] - colour).max(axis=-1)
    if (edge <= FLAT_TOLERANCE).mean() < CANVAS_SHARE:
        return 0  # most images: the outermost row is no drawn bar
    bar, stroked = _bar_rows(pixels[:limit], colour, radius)
    outside = np.flatnonzero(~bar)
    reach = int(outside[0]) if len(outside) else len(bar)
    # Runs of plain and stroked rows: starts, then the end of each.
    kinds = stroked[:reach].astype(np.int8)
    starts = np.concatenate([[0], np.flatnonzero(np.diff(kinds)) + 1])
    ends = np.concatenate([starts[1:], [reach]])
    # Plain runs after text (the run at 0 is plain: the edge row was checked).
    for run in range(2, len(starts), 2):
        if run + 2 >= len(starts):  # no further text line closed by plain rows
            last = run + 1 == len(starts)
            return int(ends[run]) if (not last or reach < len(bar)) else 0
    return 0


def _bar_rows(pixels: npt.NDArray[np.int16], colour: npt.NDArray[np.int16],
              radius: int) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Per row: is it a drawn bar's, and does it carry strokes.

    A bar's row is flat (within ``FLAT_TOLERANCE`` of ``colour``, in ``CANVAS_SHARE`` of its
    pixels) except within ``radius`` of a stroke (``STROKE_CONTRAST`` away from ``colour``),
    where JPEG rings; and in ``TEXT_BACKGROUND`` of its pixels near the colour at all (which a
    row of a bright picture is not, strokes or no). It carries text if ``TEXT_STROKES`` of it
    are strokes.
    """
    far = np.abs(pixels - colour).max(axis=-1)
    stroke = far >= STROKE_CONTRAST
    outside = ~_dilate(stroke, radius)
    flat = ((far <= FLAT_TOLERANCE) & outside).sum(axis=1) >= CANVAS_SHARE * outside.sum(axis=1)
    background = (far <= MARGIN_TOLERANCE).mean(axis=1) >= TEXT_BACKGROUND
    return flat & background, stroke.mean(axis=1) >= TEXT_STROKES


def _dilate(mask: npt.NDArray[np.bool_], radius: int) -> npt.NDArray[np.bool_]:
    """``mask`` grown by ``radius`` pixels each way (a square), through box sums."""
    size = 2 * radius + 1
    sums = np.pad(mask.astype(np.int32), radius).cumsum(axis=0)
    sums = np.vstack([np.zeros((1, sums.shape[1]), np.int32), sums])
    rows = (sums[size:] - sums[:-size]).cumsum(axis=1)
    rows = np.hstack([np.zeros((rows.shape[0], 1), np.int32), rows])
    return np.asarray(rows[:, size:] - rows[:, :-size] > 0)


def _margin_run(pixels: npt.NDArray[np.int16], share: float,
                colour: npt.NDArray[np.int16]) -> int:
    """How many leading rows of ``pixels`` have ``share`` of their pixels near ``colour``.
    Read a block of rows at a time: most images have no margin, and stop at the first."""
    for start in range(0, len(pixels), MARGIN_BLOCK):
        block = np.abs(pixels[start:start + MARGIN_BLOCK] - colour)
        far = np.maximum(np.maximum(block[..., 0], block[..., 1]), block[..., 2])
        near = (far <= MARGIN_TOLERANCE).mean(axis=1)
        outside = np.flatnonzero(near < share)
        if len(outside):
            return start + int(outside[0])
    return len(pixels)


def _exact(image: Image.Image, transforms: tuple[str, ...] = tuple(EXACT)
           ) -> list[tuple[str, str, int]]:
    """PDQ of the commonest re-uploads (``EXACT``, or those of them named) computed on the
    transformed pixels.

    compute_dihedral derives the transforms from the image's own DCT, which differs from
    hashing the transformed pixels by 10-20 bits on photos and by 40-100 on textures (grass,
    brick: PDQ's downsampling is not symmetric). Hashing the pixels costs one PDQ each, on a
    reduced copy (``_reduced``), and lands within 0-2 bits at full size. ``hash_image_query``
    runs them in two parts on ``_TRANSFORM_THREADS`` while it hashes the image itself: the
    same CPU in less wall time (hashing alone, 1.05-1.4x the image's own hashes from 1,024 px
    up, ~2x for a 1000x872 photo hashed at full size; ``bench/RESULTS.md``).
    """
    small = _reduced(image)
    found = []
    for transform in transforms:
        method = EXACT[transform]
        bits, quality = pdqhash.compute(np.asarray(small.transpose(method)))
        found.append((transform, np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes().hex(),
                      int(quality)))
    return found


def _trimmed(image: Image.Image, boxes: list[tuple[int, int, int, int]]
             ) -> list[tuple[str, str, int]]:
    """PDQ of the picture inside each margin box (``margin_boxes``): all 8 transforms of the
    first (every margin cut), the picture alone of the others (one edge's bar cut)."""
    found = []
    for number, box in enumerate(boxes):
        picture = np.asarray(_reduced(image.crop(box)))
        if number == 0:  # all margins cut: also flipped or rotated
            trimmed, quality = _dihedral(picture)
            found += [(transform, value, quality) for transform, value
                      in zip(TRANSFORMS[len(DIHEDRAL):], trimmed, strict=True)]
        else:
            bits, one_quality = pdqhash.compute(picture)
            found.append((TRIMMED, _hex(bits), int(one_quality)))
    return found


def _reduced(image: Image.Image) -> Image.Image:
    """The image box-reduced by the integer factor that brings its long side nearest above
    ``EXTRA_SIDE``: PDQ's cost is in its pass over the pixels, and its 64x64 downsample
    loses little at that size (photos moved at most 14 bits, ``bench/quality_bench.py``)."""
    factor = max(image.size) // EXTRA_SIDE
    return image.reduce(factor) if factor >= 2 else image


def _hex(bits: npt.NDArray[np.integer]) -> str:
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes().hex()


def _dihedral(pixels: npt.NDArray[np.uint8]) -> tuple[list[str], int]:
    """PDQ hex of the 8 dihedral transforms (``DIHEDRAL`` order) and the quality score."""
    hashes, quality = pdqhash.compute_dihedral(pixels)
    return ([np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes().hex() for bits in hashes],
            int(quality))

"""Turn image bytes into the hashes a node shares and matches.

A node never stores or forwards an image (DESIGN.md): images are hashed in memory where they are,
and only the hashes leave. ``hash_image`` gives, for one image:

- ``pdq`` through ``pdqhash`` (Meta's reference C++), with its quality score (0..100);
- ``phash``, ``dhash``, ``ahash``, ``whash`` through ``imagehash``, as ``str(hash)`` prints them;
- ``md5`` and ``sha256`` of the file bytes exactly as given.

Every value is passed through ``protocol.hashtypes`` ``validate()``, so it is already in the
normalised form records carry.

Untrusted input. Only JPEG (and MPO, the multi-picture JPEG phones write), PNG, GIF, WebP, BMP and
TIFF are opened -- no EPS (Pillow would run Ghostscript) or other exotic decoders. The pixel count
in the header is checked against ``max_pixels`` before any pixel is decoded. Pillow's own
decompression-bomb guard (``Image.MAX_IMAGE_PIXELS``, a process-wide setting not changed here)
stays in force as well: it refuses images above ~179 Mpx whatever ``max_pixels`` says, and warns
above ~89 Mpx.

Truncated files are errors: ``ImageFile.LOAD_TRUNCATED_IMAGES`` stays ``False`` and ``load()``
forces the full decode, so a cut-off upload can never yield a hash of half an image. Decoders
of hostile bytes raise many exception types; all of them become ``ImageError`` with a message
saying what is wrong (not an image / truncated / too large in pixels / corrupt).

Orientation. The EXIF orientation is applied first (``ImageOps.exif_transpose``), so a photo hashes
the way it is displayed, whichever way the camera stored it.

Speed. PDQ over a full 12-megapixel decode takes ~0.5 s, nearly all of it spent on pixels that
the hash (a 64x64 downsample) never needs. So the image is decoded at reduced size: JPEG through
``Image.draft`` (libjpeg's DCT scaling by 1/2, 1/4 or 1/8), other formats through an integer box
``reduce``, in both cases to the smallest size whose short side is still at least
``WORKING_SHORT_SIDE`` = 768 px. Measured with ``python bench/hash_bench.py`` (2 cores, 44
scikit-image samples and crops upscaled and saved as JPEG q88; distance = reduced vs full decode):

    source      working size  all 7 hashes (median)  PDQ distance max / mean  imagehash types
    1024x768    1024x768        60 ms                 0 (not reduced)         0
    4000x3000   2000x1500      254 ms (full: 1264)    6 / 2.0 of 256          max 2 / 64
    3000x4000   1500x2000         -                   8 / 2.0                 max 2 / 64

A short side of 512 instead (1000x750 from 4000x3000) was 3-4x faster again, but moved textures
and scanned pages by 16-26 bits, too much of PDQ's 31-bit budget.

Alpha is dropped (pixels keep their colour), as ``imagehash`` and python-threatexchange do, so
these hashes agree with theirs. 16-bit greyscale is scaled to 8 bits rather than clipped.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import imagehash
import numpy as np
import pdqhash
from PIL import Image, ImageOps, UnidentifiedImageError

from hashmesh.protocol.hashtypes import HASH_TYPES, get_hash_type

WORKING_SHORT_SIDE = 768
DEFAULT_MAX_PIXELS = 100_000_000
# Memory the decoder may allocate for one image at the size it decodes (after a JPEG's
# draft scaling). PNG, GIF, WebP, BMP and TIFF decode at full size only, so a 12 KB PNG that
# declares 10000x10000 would take 400 MB here, and ~800 MB with the conversions: refused.
MAX_DECODE_BYTES = 128 * 2**20
# "JPEG" covers MPO too: Pillow opens multi-picture JPEGs under the JPEG format.
ALLOWED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"})

_IMAGEHASH: dict[str, Callable[[Image.Image], imagehash.ImageHash]] = {
    "phash": imagehash.phash,
    "dhash": imagehash.dhash,
    "ahash": imagehash.average_hash,
    "whash": imagehash.whash,
}
# Every registered type except photodna, whose algorithm is licensed; in registry order.
COMPUTABLE_TYPES: tuple[str, ...] = tuple(
    name for name in HASH_TYPES if name in _IMAGEHASH or name in ("pdq", "md5", "sha256")
)


@dataclass(frozen=True)
class ComputedHash:
    """One hash of one image, its value normalised as records carry it."""

    type: str
    value: str
    quality: int | None = None  # PDQ's quality score (0..100); None for other types


class ImageError(Exception):
    """The bytes cannot be hashed as an image; the message says why."""

    code: ClassVar[str] = "BAD_IMAGE"


def hash_image(
    data: bytes,
    *,
    types: Collection[str] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    short_side: int | None = WORKING_SHORT_SIDE,
) -> list[ComputedHash]:
    """Hash an image held in memory, in ``COMPUTABLE_TYPES`` order.

    ``types`` selects algorithms (default: all computable ones). The bytes must decode as an
    image even if only md5/sha256 are asked for: a node shares hashes of images, and an upload
    that is not one is an error to report, not a file to fingerprint. ``short_side=None`` decodes
    at full resolution; it exists to measure what the reduced decode costs in accuracy.
    """
    wanted = _select_types(types)
    image = decode_image(data, max_pixels=max_pixels, short_side=short_side)
    return hash_decoded(image, data, wanted)


def hash_decoded(image: Image.Image, data: bytes | None, wanted: Collection[str],
                 pdq: tuple[str, int] | None = None) -> list[ComputedHash]:
    """``hash_image`` of an image already decoded (``decode_image``): what an image query
    reuses for the variants it hashes besides (``node/matching/image_query.py``).

    ``data`` is needed for md5/sha256 only; ``pdq`` is a (value, quality) computed already.
    """
    results: list[ComputedHash] = []
    luma = image.convert("L") if any(name in _IMAGEHASH for name in wanted) else None
    for name in wanted:
        quality: int | None = None
        if name == "pdq":
            value, quality = pdq if pdq is not None else _pdq(image)
        elif name in ("md5", "sha256"):
            if data is None:
                continue
            value = hashlib.new(name, data).hexdigest()
        else:
            assert luma is not None
            value = str(_IMAGEHASH[name](luma))
        results.append(ComputedHash(name, HASH_TYPES[name].validate(value), quality))
    return results


def hash_file(
    path: str | os.PathLike[str],
    *,
    types: Collection[str] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> list[ComputedHash]:
    """``hash_image`` of a file's bytes, for the CLI."""
    return hash_image(Path(path).read_bytes(), types=types, max_pixels=max_pixels)


def iter_image_files(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    """Expand CLI arguments: a folder gives its image files (by extension, recursively, sorted);
    a file is given back as named, whatever its extension, since the user asked for it.

    Every argument is checked to exist before anything is yielded, so a typo fails before work
    starts. Symlinked folders are not followed (no loops).
    """
    given = [Path(p) for p in paths]
    for path in given:
        if not path.exists():
            raise FileNotFoundError(errno.ENOENT, "no such file or folder", str(path))
    for path in given:
        if path.is_dir():
            yield from sorted(_images_under(path))
        else:
            yield path


def decode_image(
    data: bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    short_side: int | None = WORKING_SHORT_SIDE,
) -> Image.Image:
    """Decode untrusted bytes to an upright RGB image, reduced so its short side stays at least
    ``short_side`` (``None``: full resolution). Raises ``ImageError`` saying what is wrong."""
    if short_side is not None and short_side < 1:
        raise ValueError(f"short_side must be a positive number of pixels, got {short_side}")
    if not data:
        raise ImageError("not an image (empty input)")
    try:
        with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as opened:
            _check_pixels(opened.size, max_pixels)
            if short_side is not None:
                opened.draft("RGB", (short_side, short_side))  # no-op unless JPEG
            _check_decode_bytes(opened)
            opened.load()
            image = _to_rgb(ImageOps.exif_transpose(_reduced(opened, short_side)))
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("not an image (not a JPEG, PNG, GIF, WebP, BMP or TIFF file)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"too large in pixels ({exc})") from None
    except MemoryError:
        raise
    except Exception as exc:  # hostile bytes make decoders raise OSError, SyntaxError, ...
        raise ImageError(_describe_decode_failure(exc)) from exc
    return image


# Bytes per pixel of the modes Pillow decodes to, and of the mode an image is converted to
# before it can be box-reduced (``reduce`` takes neither bilevel nor palette images).
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "LA": 2, "PA": 2, "I;16": 2, "I;16B": 2,
                    "RGB": 3, "YCbCr": 3, "RGBA": 4, "CMYK": 4, "I": 4, "F": 4}
_CONVERT_BEFORE_REDUCE = {"1": "L", "P": "RGBA", "PA": "RGBA"}


def _check_decode_bytes(image: Image.Image) -> None:
    """Refuse an image whose decode, at the size it will decode to, needs more memory than
    ``MAX_DECODE_BYTES`` (the decoded pixels, and the converted copy a bilevel or palette
    image needs before it can be reduced): checked from the header, before any pixel is
    allocated."""
    width, height = image.size
    per_pixel = _BYTES_PER_PIXEL.get(image.mode, 4)
    if image.mode in _CONVERT_BEFORE_REDUCE:
        per_pixel += _BYTES_PER_PIXEL[_CONVERT_BEFORE_REDUCE[image.mode]]
    needed = width * height * per_pixel
    if needed > MAX_DECODE_BYTES:
        raise ImageError(
            f"too large to decode ({image.format} of {width}x{height} pixels, mode "
            f"{image.mode}, needs {needed / 2**20:,.0f} MiB of memory; the limit is "
            f"{MAX_DECODE_BYTES / 2**20:,.0f} MiB)")


def _reduced(image: Image.Image, short_side: int | None) -> Image.Image:
    """Box-reduce a decoded image before the copies that orientation and conversion make, so
    they copy the small image; keeps ``info`` (EXIF orientation) for ``exif_transpose``."""
    if short_side is None:
        return image
    factor = min(image.size) // short_side
    if factor < 2:
        return image
    source = image
    if image.mode in _CONVERT_BEFORE_REDUCE:
        source = image.convert(_CONVERT_BEFORE_REDUCE[image.mode])
    reduced = source.reduce(factor)
    reduced.info = dict(image.info)
    exif = image.getexif()
    if exif:
        reduced.getexif().update(exif)
    return reduced


def _select_types(types: Collection[str] | None) -> list[str]:
    if types is None:
        return list(COMPUTABLE_TYPES)
    if isinstance(types, str):
        raise TypeError(f"types must be a collection of names, not the string {types!r}")
    for name in types:
        if get_hash_type(name, "types").name not in COMPUTABLE_TYPES:
            computable = ", ".join(COMPUTABLE_TYPES)
            raise ValueError(f"cannot compute {name} hashes (hashmesh computes: {computable})")
    return [name for name in COMPUTABLE_TYPES if name in types]


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise ImageError(
            f"too large in pixels ({width}x{height} = {width * height:,} pixels, "
            f"limit {max_pixels:,})"
        )


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "I" or image.mode.startswith("I;16"):
        # 16-bit greyscale: Pillow's convert() would clip everything above 255 to white.
        pixels = np.asarray(image).astype(np.int64)
        image = Image.fromarray((np.clip(pixels, 0, 65535) >> 8).astype(np.uint8))
    elif image.mode in ("P", "PA"):
        # Via RGBA, so a palette with transparency converts without Pillow's warning.
        image = image.convert("RGBA")
    return image if image.mode == "RGB" else image.convert("RGB")


def _pdq(image: Image.Image) -> tuple[str, int]:
    bits, quality = pdqhash.compute(np.asarray(image))
    # Bit 0 is the most significant: the hex form of PDQ's reference and python-threatexchange.
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes().hex(), int(quality)


def _describe_decode_failure(exc: Exception) -> str:
    detail = str(exc) or type(exc).__name__
    if "truncated" in detail.lower():
        return f"truncated image ({detail})"
    return f"corrupt image ({detail})"


def _images_under(folder: Path) -> Iterator[Path]:
    for root, _dirs, files in os.walk(folder):
        for name in files:
            if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                yield Path(root, name)

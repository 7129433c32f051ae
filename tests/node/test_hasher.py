"""The image hasher on real photographs (scikit-image's sample data), not synthetic noise.

Measured with these tests' photos and variants (resized to 50%/75% and JPEG q80, or re-encoded
at q70/q85), the largest distance from the original and the closest pair of different photos:

    type   threshold  copies: max distance  different photos: min distance
    pdq    31         22 (coins, 50%)       106 (camera / coins)
    phash  10          2                     20
    dhash  10          2                     16
    ahash   8          1                     16
    whash   8          0                     14

so every perceptual type is asserted both ways. (Textures and synthetic images -- brick, page,
chessboard -- are left out: PDQ moves them by up to 60 bits, which is PDQ's known weakness, not
the hasher's.)
"""

from __future__ import annotations

import hashlib
import io
import itertools
import struct
import warnings
import zlib
from functools import cache
from pathlib import Path

import imagehash
import numpy as np
import pdqhash
import pytest
import skimage
from PIL import Image

from hashmesh.node.matching.hasher import (
    COMPUTABLE_TYPES,
    WORKING_SHORT_SIDE,
    ComputedHash,
    ImageError,
    decode_image,
    hash_file,
    hash_image,
    iter_image_files,
)
from hashmesh.protocol.errors import UnknownHashTypeError
from hashmesh.protocol.hashtypes import HASH_TYPES

DATA = Path(skimage.__file__).parent / "data"
PHOTOS = [
    "astronaut.png",
    "coffee.png",
    "chelsea.png",
    "camera.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "coins.png",
    "moon.png",
    "ihc.png",
]
PERCEPTUAL = ["pdq", "phash", "dhash", "ahash", "whash"]
VARIANTS = ["resized-50%", "resized-75%", "jpeg-q70", "jpeg-q85"]


def photo_bytes(name: str) -> bytes:
    return (DATA / name).read_bytes()


def photo(name: str) -> Image.Image:
    return Image.open(DATA / name).convert("RGB")


def encode(image: Image.Image, fmt: str = "JPEG", **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def variant(name: str, kind: str) -> bytes:
    image = photo(name)
    if kind.startswith("resized-"):
        scale = int(kind.removeprefix("resized-").rstrip("%")) / 100
        size = (round(image.width * scale), round(image.height * scale))
        return encode(image.resize(size, Image.Resampling.LANCZOS), quality=80)
    return encode(image, quality=int(kind.removeprefix("jpeg-q")))


@cache
def hashes_of(data: bytes) -> dict[str, str]:
    return {h.type: h.value for h in hash_image(data, types=PERCEPTUAL)}


@cache
def original_hashes(name: str) -> dict[str, str]:
    return hashes_of(photo_bytes(name))


def distance(hash_type: str, a: str, b: str) -> int:
    return HASH_TYPES[hash_type].distance(a, b)


def pdq_distance(a: bytes, b: bytes, **kwargs: object) -> int:
    (x,) = hash_image(a, types=["pdq"])
    (y,) = hash_image(b, types=["pdq"], **kwargs)  # type: ignore[arg-type]
    return distance("pdq", x.value, y.value)


# -- near-duplicates match, different photos do not --------------------------------------------


@pytest.mark.parametrize("kind", VARIANTS)
@pytest.mark.parametrize("name", PHOTOS)
def test_resized_and_recompressed_copy_matches_under_every_default_threshold(
    name: str, kind: str
) -> None:
    original = original_hashes(name)
    copy = hashes_of(variant(name, kind))
    for hash_type in PERCEPTUAL:
        d = distance(hash_type, original[hash_type], copy[hash_type])
        assert d <= HASH_TYPES[hash_type].default_threshold, (hash_type, d)


@pytest.mark.parametrize("hash_type", PERCEPTUAL)
def test_different_photos_do_not_match_under_default_threshold(hash_type: str) -> None:
    threshold = HASH_TYPES[hash_type].default_threshold
    for a, b in itertools.combinations(PHOTOS, 2):
        d = distance(hash_type, original_hashes(a)[hash_type], original_hashes(b)[hash_type])
        assert d > threshold, (a, b, d)


def test_exif_rotated_copy_matches_only_because_orientation_is_applied() -> None:
    upright = photo("chelsea.png")  # 451x300: a quarter turn is not a no-op
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # as a sideways-held camera stores it
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    with_tag = encode(stored, quality=90, exif=exif)
    without_tag = encode(stored, quality=90)
    original = photo_bytes("chelsea.png")
    assert pdq_distance(original, with_tag) <= 31
    assert pdq_distance(original, without_tag) > 31


@pytest.mark.parametrize(
    ("fmt", "params"),
    [("JPEG", {"quality": 90}), ("PNG", {}), ("GIF", {}), ("WEBP", {"quality": 90}),
     ("BMP", {}), ("TIFF", {})],
)
def test_every_supported_format_of_a_photo_matches_the_original(
    fmt: str, params: dict[str, object]
) -> None:
    data = encode(photo("astronaut.png"), fmt, **params)
    assert pdq_distance(photo_bytes("astronaut.png"), data) <= 31


# -- values: normalised, and equal to the reference libraries ---------------------------------


def test_all_computable_types_in_registry_order_with_quality_only_for_pdq() -> None:
    result = hash_image(photo_bytes("coffee.png"))
    assert [h.type for h in result] == list(COMPUTABLE_TYPES)
    assert COMPUTABLE_TYPES == ("pdq", "md5", "sha256", "phash", "dhash", "ahash", "whash")
    for h in result:
        assert h.value == HASH_TYPES[h.type].validate(h.value)
        if h.type == "pdq":
            assert h.quality is not None and 50 <= h.quality <= 100
        else:
            assert h.quality is None


def test_md5_and_sha256_are_digests_of_the_exact_file_bytes() -> None:
    data = photo_bytes("rocket.jpg")
    result = {h.type: h.value for h in hash_image(data, types=["md5", "sha256"])}
    assert result == {
        "md5": hashlib.md5(data).hexdigest(),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def test_pdq_hex_has_threatexchange_bit_order() -> None:
    """The first of pdqhash's 256 bits is the most significant bit of the hex string."""
    data = photo_bytes("astronaut.png")  # 512x512: below the working size, so not reduced
    bits, quality = pdqhash.compute(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
    bin_str = "".join(str(int(b)) for b in bits)  # python-threatexchange's pdq_hasher
    expected = f"{int(bin_str, 2):064x}"
    assert hash_image(data, types=["pdq"]) == [ComputedHash("pdq", expected, int(quality))]


def test_imagehash_values_are_what_imagehash_prints() -> None:
    data = photo_bytes("astronaut.png")
    image = Image.open(io.BytesIO(data))
    expected = {
        "phash": str(imagehash.phash(image)),
        "dhash": str(imagehash.dhash(image)),
        "ahash": str(imagehash.average_hash(image)),
        "whash": str(imagehash.whash(image)),
    }
    assert {h.type: h.value for h in hash_image(data, types=expected)} == expected


def test_sixteen_bit_greyscale_is_scaled_not_clipped_to_white() -> None:
    grey8 = np.asarray(Image.open(DATA / "camera.png").convert("L"))
    grey16 = Image.fromarray(grey8.astype(np.uint16) * 257)
    assert grey16.mode == "I;16"
    assert pdq_distance(photo_bytes("camera.png"), encode(grey16, "PNG")) <= 4


def test_alpha_channel_is_dropped() -> None:
    rgba = photo("coffee.png").convert("RGBA")
    rgba.putalpha(128)
    assert hashes_of(encode(rgba, "PNG")) == hashes_of(encode(photo("coffee.png"), "PNG"))


def test_palette_image_with_transparency_hashes_without_warnings() -> None:
    palette = photo("coffee.png").quantize(256)
    # Per-entry alpha (a tRNS chunk of bytes): plain convert("RGB") would warn about it.
    data = encode(palette, "PNG", transparency=bytes([0, 64, 128]))
    assert isinstance(Image.open(io.BytesIO(data)).info["transparency"], bytes)
    assert pdq_distance(photo_bytes("coffee.png"), data) <= 31  # filterwarnings=error is on


# -- large photos: reduced decode is fast and stays close to full resolution -------------------


@pytest.mark.parametrize(("fmt", "size"), [("JPEG", (4000, 3000)), ("BMP", (2400, 3200))])
def test_reduced_decode_of_large_photo_stays_close_to_full_resolution(
    fmt: str, size: tuple[int, int]
) -> None:
    big = encode(photo("motorcycle_left.png").resize(size, Image.Resampling.LANCZOS), fmt)
    reduced = decode_image(big)
    assert WORKING_SHORT_SIDE <= min(reduced.size) < 2 * WORKING_SHORT_SIDE
    assert reduced.width / reduced.height == pytest.approx(size[0] / size[1], rel=0.01)
    (full,) = hash_image(big, types=["pdq"], short_side=None)
    (fast,) = hash_image(big, types=["pdq"])
    assert distance("pdq", full.value, fast.value) <= 10


def test_large_jpeg_is_scaled_by_libjpeg_while_decoding() -> None:
    big = encode(photo("chelsea.png").resize((3200, 2400)), quality=85)
    scaled = Image.open(io.BytesIO(big))
    scaled.draft("RGB", (WORKING_SHORT_SIDE, WORKING_SHORT_SIDE))
    assert scaled.size == (1600, 1200)  # libjpeg's 1/2 scale: never the 3200x2400 pixels
    assert np.array_equal(np.asarray(decode_image(big)), np.asarray(scaled.convert("RGB")))


def test_small_images_are_not_reduced() -> None:
    assert decode_image(photo_bytes("coffee.png")).size == (600, 400)


# -- what cannot be hashed ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello, this is not an image",
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n",  # Ghostscript: never
        b"\x00\x00\x00\x18ftypmp42" + bytes(100),  # an MP4 header
    ],
    ids=["empty", "text", "pdf", "eps", "mp4"],
)
def test_non_image_bytes_raise_image_error(data: bytes) -> None:
    with pytest.raises(ImageError, match=r"^not an image") as info:
        hash_image(data)
    assert info.value.code == "BAD_IMAGE"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "BMP", "TIFF"])
@pytest.mark.parametrize("keep", [0.5, 0.95])
def test_truncated_image_raises_image_error(fmt: str, keep: float) -> None:
    data = encode(photo("astronaut.png"), fmt)
    with pytest.raises(ImageError, match=r"^truncated image"):
        hash_image(data[: int(len(data) * keep)])


def test_truncated_large_jpeg_raises_even_with_reduced_decode() -> None:
    data = encode(photo("chelsea.png").resize((2000, 1500)), quality=85)
    with pytest.raises(ImageError, match=r"^truncated image"):
        hash_image(data[: len(data) * 3 // 4])


def test_corrupt_image_data_raises_image_error() -> None:
    data = bytearray(encode(photo("astronaut.png"), "PNG"))
    data[2000:2100] = bytes(100)  # zeroes inside the compressed pixel stream
    with pytest.raises(ImageError):
        hash_image(bytes(data))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares a size but has no pixel data: what a decompression bomb opens with."""


    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(64)))
            + chunk(b"IEND", b""))


def test_image_above_max_pixels_is_rejected_before_decoding() -> None:
    with pytest.raises(ImageError) as info:
        hash_image(photo_bytes("astronaut.png"), max_pixels=100_000)
    assert str(info.value) == (
        "too large in pixels (512x512 = 262,144 pixels, limit 100,000)"
    )


def test_declared_size_over_default_limit_is_rejected_without_allocating() -> None:
    with warnings.catch_warnings():
        # Pillow warns from ~89.5 Mpx; the warning is not what this test is about.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with pytest.raises(ImageError, match=r"^too large in pixels \(12000x9000 = "):
            hash_image(png_header_only(12_000, 9_000))


def test_pillow_decompression_bomb_error_becomes_image_error() -> None:
    with pytest.raises(ImageError, match=r"^too large in pixels"):
        hash_image(png_header_only(60_000, 60_000), max_pixels=10**12)


# -- choosing types ----------------------------------------------------------------------------


def test_only_requested_types_are_computed_in_canonical_order() -> None:
    result = hash_image(photo_bytes("coffee.png"), types={"whash", "md5", "pdq"})
    assert [h.type for h in result] == ["pdq", "md5", "whash"]


def test_unknown_type_is_rejected_by_name() -> None:
    with pytest.raises(UnknownHashTypeError, match="'pdq2'"):
        hash_image(photo_bytes("coffee.png"), types=["pdq2"])


def test_photodna_cannot_be_computed() -> None:
    with pytest.raises(ValueError, match="cannot compute photodna"):
        hash_image(photo_bytes("coffee.png"), types=["photodna"])


def test_types_given_as_a_single_string_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="not the string 'pdq'"):
        hash_image(photo_bytes("coffee.png"), types="pdq")


# -- files and folders for the CLI -------------------------------------------------------------


def test_hash_file_hashes_the_file_bytes(tmp_path: Path) -> None:
    path = tmp_path / "rocket.jpg"
    path.write_bytes(photo_bytes("rocket.jpg"))
    assert hash_file(path) == hash_image(photo_bytes("rocket.jpg"))


def test_iter_image_files_expands_folders_recursively_and_sorted(tmp_path: Path) -> None:
    for rel in ["b.png", "a/z.JPG", "a/y.jpeg", "a/deep/x.webp", "c.tiff", "d.tif", "e.gif",
                "f.bmp", "notes.txt", "a/raw.heic", "a/deep/archive.zip"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    named = tmp_path / "notes.txt"
    found = [p.relative_to(tmp_path).as_posix() for p in iter_image_files([tmp_path, named])]
    assert found == ["a/deep/x.webp", "a/y.jpeg", "a/z.JPG", "b.png", "c.tiff", "d.tif",
                     "e.gif", "f.bmp", "notes.txt"]


def test_iter_image_files_checks_every_path_before_yielding(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"")
    files = iter_image_files([tmp_path, tmp_path / "missing.jpg"])
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        next(files)

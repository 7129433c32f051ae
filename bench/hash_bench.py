"""How fast the image hasher (``node/matching/hasher.py``) is on large photos, and what its
reduced decode costs in PDQ accuracy.

    python bench/hash_bench.py [--quick]

Table 1: median time of ``hash_image`` (all computable types, and PDQ alone) for a 1024x768 and a
4000x3000 JPEG made by upscaling a scikit-image photo, decoded at full resolution
(``short_side=None``) and the default reduced way, with the PDQ distance between the two paths.

Table 2: the distance between the two paths over many scikit-image images and crops, upscaled to
4000x3000 and 3000x4000 and saved as JPEG q88 -- the figures quoted in ``node/matching/hasher.py``.
Textures and scanned pages are included on purpose: they move most.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from PIL import Image

from hashmesh.node.matching.hasher import WORKING_SHORT_SIDE, decode_image, hash_image
from hashmesh.protocol.hashtypes import HASH_TYPES

PERCEPTUAL = ["pdq", "phash", "dhash", "ahash", "whash"]
SAMPLES = [
    "astronaut.png", "coffee.png", "chelsea.png", "camera.png", "rocket.jpg",
    "motorcycle_left.png", "hubble_deep_field.jpg", "retina.jpg", "coins.png", "moon.png",
    "brick.png", "grass.png", "gravel.png", "ihc.png", "page.png", "text.png", "color.png",
    "logo.png", "horse.png", "cell.png", "microaneurysms.png", "clock_motion.png",
]


def skimage_data() -> Path:
    """scikit-image's sample-data folder, found without importing scikit-image."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("scikit-image is not installed (pip install scikit-image)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def upscaled_jpeg(image: Image.Image, size: tuple[int, int], quality: int = 88) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").resize(size, Image.Resampling.LANCZOS).save(buffer, "JPEG",
                                                                    quality=quality)
    return buffer.getvalue()


def median_ms(run: Callable[[], object], repeats: int) -> float:
    run()  # warm caches and lazy imports
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def pdq_value(data: bytes, short_side: int | None) -> str:
    (pdq,) = hash_image(data, types=["pdq"], short_side=short_side)
    return pdq.value


def timing_table(photo: Image.Image, repeats: int) -> None:
    print(f"Table 1: median of {repeats} runs, chelsea.png upscaled, JPEG q88")
    header = (f"{'source':>10}  {'decode':<8} {'working size':>12}  {'all types ms':>12}  "
              f"{'pdq only ms':>11}  {'pdq distance':>12}")
    print(header)
    print("-" * len(header))
    for size in [(1024, 768), (4000, 3000)]:
        data = upscaled_jpeg(photo, size)
        full_pdq = pdq_value(data, None)
        for label, short_side in [("full", None), ("reduced", WORKING_SHORT_SIDE)]:
            working = decode_image(data, short_side=short_side).size
            all_ms = median_ms(partial(hash_image, data, short_side=short_side), repeats)
            pdq_ms = median_ms(partial(pdq_value, data, short_side), repeats)
            d = HASH_TYPES["pdq"].distance(full_pdq, pdq_value(data, short_side))
            print(f"{size[0]:>5}x{size[1]:<4}  {label:<8} {working[0]:>5}x{working[1]:<6}  "
                  f"{all_ms:>12.0f}  {pdq_ms:>11.0f}  {d:>12}")
    print()


def accuracy_table(folder: Path, names: list[str]) -> None:
    sources: list[tuple[str, Image.Image]] = []
    for name in names:
        image = Image.open(folder / name).convert("RGB")
        w, h = image.size
        sources += [(name, image), (name + " (crop)", image.crop((w // 8, h // 8, w - w // 6,
                                                                  h - h // 5)))]
    print(f"Table 2: full vs reduced decode, distance per type over {len(sources)} images "
          f"(scikit-image samples and crops), JPEG q88")
    header = f"{'source':>10}  " + "  ".join(f"{t + ' max/mean':>15}" for t in PERCEPTUAL)
    header += "  worst pdq"
    print(header)
    print("-" * len(header))
    for size in [(4000, 3000), (3000, 4000)]:
        distances: dict[str, list[int]] = {t: [] for t in PERCEPTUAL}
        worst = ("", -1)
        for name, image in sources:
            data = upscaled_jpeg(image, size)
            full = {h.type: h.value for h in hash_image(data, types=PERCEPTUAL, short_side=None)}
            fast = {h.type: h.value for h in hash_image(data, types=PERCEPTUAL)}
            for t in PERCEPTUAL:
                distances[t].append(HASH_TYPES[t].distance(full[t], fast[t]))
            if distances["pdq"][-1] > worst[1]:
                worst = (name, distances["pdq"][-1])
        cells = "  ".join(f"{max(d):>7} / {statistics.mean(d):>5.1f}"
                          for d in distances.values())
        print(f"{size[0]:>5}x{size[1]:<4}  {cells}  {worst[0]}")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs and images")
    args = parser.parse_args()
    folder = skimage_data()
    timing_table(Image.open(folder / "chelsea.png"), repeats=3 if args.quick else 9)
    accuracy_table(folder, SAMPLES[:4] if args.quick else SAMPLES)


if __name__ == "__main__":
    main()

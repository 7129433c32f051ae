"""Time of one ``POST /v1/match/image`` against a real node process, photos of two sizes.

Why: issue 11 lets an image query also look up the 8 dihedral PDQ transforms and a
margin-trimmed copy, at no more than twice the former cost. Hashing dominates an image query,
so the figure that matters is the time of one call end to end, measured here on a real
``hashmesh run`` on loopback holding a few thousand records (whose size barely matters).

    python -m bench.image_bench --quick     # 15 calls per image
    python -m bench.image_bench             # 40 calls per image

Images: scikit-image's ``astronaut`` upscaled to 1024x768 and 4000x3000 and saved as JPEG
q88 (as ``bench/hash_bench.py``), and the 1024x768 one pasted onto a white canvas 20% larger
(a padded screenshot, the case that costs a second hashing pass), and the 1024x768 one under
a black caption bar with white text (a meme, which the caption-band search reads as well);
and two photos below 1024 px, whose extra hashes are taken at full size: ``astronaut`` at
its own 512x512 and ``hubble_deep_field`` at 1000x872.
Nothing is written to disk
but the node's own directory, which is a temporary one.

A second table times the hashing alone, in this process, interleaved call by call: what an
image query hashed before issue 11 (``hash_image``: the image's own hashes) and what it hashes
now (``hash_image_query``: also the flips, rotations and trimmed margin). Interleaving keeps
the ratio honest on a machine shared with other work, where two runs minutes apart can
differ by 2x.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from bench.hash_bench import skimage_data, upscaled_jpeg
from bench.image_call_bench import post_image
from bench.nodes import make_node
from hashmesh.node.matching.hasher import hash_image
from hashmesh.node.matching.image_query import hash_image_query


def padded_jpeg(data: bytes) -> bytes:
    """The image centred on a white canvas 20% larger each way: a uniform margin."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    canvas = Image.new("RGB", (image.width * 6 // 5, image.height * 6 // 5), "white")
    canvas.paste(image, (image.width // 10, image.height // 10))
    buffer = io.BytesIO()
    canvas.save(buffer, "JPEG", quality=88)
    return buffer.getvalue()


def captioned_jpeg(data: bytes) -> bytes:
    """The image under a black bar of 12% of its height with a line of white text."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    bar = image.height * 12 // 100
    canvas = Image.new("RGB", (image.width, image.height + bar), "black")
    canvas.paste(image, (0, bar))
    ImageDraw.Draw(canvas).text((bar // 3, bar // 6), "when you see it lol", fill="white",
                                font=ImageFont.load_default(size=bar * 6 // 10))
    buffer = io.BytesIO()
    canvas.save(buffer, "JPEG", quality=88)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="15 calls per image")
    parser.add_argument("--calls", type=int, default=40)
    args = parser.parse_args()
    calls = 15 if args.quick else args.calls
    photo = Image.open(skimage_data() / "astronaut.png")
    small = upscaled_jpeg(photo, (1024, 768))
    images = {
        "1024x768 JPEG": small,
        "4000x3000 JPEG": upscaled_jpeg(photo, (4000, 3000)),
        "1024x768 on a white canvas": padded_jpeg(small),
        "1024x768 under a black caption bar": captioned_jpeg(small),
        # below 1024 px the extra hashes are taken at full size (no whole reduction factor)
        "512x512 photo (astronaut)": upscaled_jpeg(photo, (512, 512)),
        "1000x872 photo (hubble_deep_field)": upscaled_jpeg(
            Image.open(skimage_data() / "hubble_deep_field.jpg"), (1000, 872)),
    }
    print(f"# hashing alone, interleaved, {calls} calls each (median ms)")
    print("| image | own hashes (before) | image query (now) | ratio |")
    print("|---|---|---|---|")
    for name, data in images.items():
        hash_image(data), hash_image_query(data)  # warm up
        before, now = [], []
        for _ in range(calls):
            started = time.perf_counter()
            hash_image(data)
            before.append(time.perf_counter() - started)
            started = time.perf_counter()
            hash_image_query(data)
            now.append(time.perf_counter() - started)
        b, n = statistics.median(before), statistics.median(now)
        print(f"| {name} | {1000 * b:.0f} | {1000 * n:.0f} | {n / b:.2f} |")
    print()
    with tempfile.TemporaryDirectory() as root:
        node = make_node(Path(root), "bench", "127.0.0.1")
        node.start()
        try:
            node.call("POST", "/v1/records", {"items": [
                {"hashes": [{"type": "pdq", "value": f"{i:064x}"}]} for i in range(256)]})
            print(f"# POST /v1/match/image, one call at a time, {calls} calls per image "
                  "(median and max, ms)")
            print("| image | median | max |")
            print("|---|---|---|")
            for name, data in images.items():
                post_image(node, data)  # warm up: imports, kernel
                times = [post_image(node, data) for _ in range(calls)]
                print(f"| {name} | {1000 * statistics.median(times):.0f} | "
                      f"{1000 * max(times):.0f} |")
        finally:
            node.stop()


if __name__ == "__main__":
    main()

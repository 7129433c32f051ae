"""Time of one ``POST /v1/match/image`` end to end, for photos below and above 1,024 px.

Why: issue 11 bounds an image query at twice the former cost of a call. Below 1,024 px the
query's extra hashes are taken at full size (``image_query._reduced``), the dearest case.
This script uses only ``bench.nodes`` and ``bench.hash_bench``, so the same file runs on an
export of an older commit (``PYTHONPATH=/path/to/export``, see ``bench/README.md``) and
gives the before and after side by side.

    python -m bench.image_call_bench             # 15 calls per image
    PYTHONPATH=/tmp/old python /path/to/bench/image_call_bench.py
"""

from __future__ import annotations

import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

from PIL import Image

from bench.hash_bench import skimage_data, upscaled_jpeg
from bench.nodes import BenchNode, make_node

CALLS = 15


def post_image(node: BenchNode, data: bytes) -> float:
    request = urllib.request.Request(
        node.url + "/v1/match/image", data=data, method="POST",
        headers={"Authorization": f"Bearer {node.token}",
                 "Content-Type": "application/octet-stream"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:
        response.read()
    return time.perf_counter() - started


def main() -> None:
    photo = Image.open(skimage_data() / "astronaut.png")
    images = {
        "512x512 astronaut": upscaled_jpeg(photo, (512, 512)),
        "1000x872 hubble_deep_field": upscaled_jpeg(
            Image.open(skimage_data() / "hubble_deep_field.jpg"), (1000, 872)),
        "1024x768 astronaut": upscaled_jpeg(photo, (1024, 768)),
    }
    with tempfile.TemporaryDirectory() as root:
        node = make_node(Path(root), "bench", "127.0.0.1")
        node.start()
        try:
            print(f"| image | median of {CALLS} calls |")
            print("|---|---|")
            for name, data in images.items():
                for _ in range(3):  # warm up: imports, kernel
                    post_image(node, data)
                times = [post_image(node, data) for _ in range(CALLS)]
                print(f"| {name} | {1000 * statistics.median(times):.0f} ms |")
        finally:
            node.stop()


if __name__ == "__main__":
    main()

"""The intake page's hashing, measured in headless Chromium against a real node process.

Prints, for the scikit-image and scikit-learn sample photos, the PDQ distance between the
page's JavaScript (the browser decodes the file) and the node's pdqhash (Pillow decodes it),
and the time the page takes for PDQ of a 4000x3000 photo and for MD5 + SHA-256 of a large
file read in 4 MiB chunks.

    python -m bench.intake_bench            # 512 MiB file
    python -m bench.intake_bench --quick    # 128 MiB file
"""

from __future__ import annotations

import argparse
import base64
import glob
import io
import statistics
import tempfile
from pathlib import Path
from typing import Any

from PIL import Image

from bench.nodes import free_port, make_node
from hashmesh.node.matching.hasher import hash_image

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
HASH_BLOB = """async ({data, type}) => {
  const hashing = await import('/static/hashing.js');
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  const started = performance.now();
  const bitmap = await hashing.decodeImage(new Blob([bytes], {type}));
  const result = hashing.pdqOfBitmap(bitmap);
  bitmap.close();
  return {...result, ms: performance.now() - started};
}"""
DIGEST = """async (mib) => {
  const hashing = await import('/static/hashing.js');
  const blob = new Blob([new Uint8Array(mib * 1024 * 1024)], {type: 'video/mp4'});
  const started = performance.now();
  await hashing.digestFile(blob);
  return performance.now() - started;
}"""


def photos() -> list[Path]:
    import skimage
    import sklearn

    folders = [Path(skimage.__file__).parent / "data",
               Path(sklearn.__file__).parent / "datasets" / "images"]
    return [Path(p) for folder in folders for p in sorted(glob.glob(str(folder / "*")))
            if p.lower().endswith((".png", ".jpg", ".jpeg"))]


def pdq_in_page(page: Any, data: bytes, kind: str) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(
        HASH_BLOB, {"data": base64.b64encode(data).decode(), "type": kind})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="hash a 128 MiB file, not 512")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as root:
        node = make_node(Path(root), "intake", "127.0.0.1")
        port = free_port("127.0.0.1")
        with node.config.open("a") as out:
            out.write(f"\n[intake]\nenabled = true\nport = {port}\nrequests_per_minute = 1000\n")
        node.start()
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{port}/")
                distances = []
                for path in photos():
                    data = path.read_bytes()
                    kind = "image/png" if path.suffix == ".png" else "image/jpeg"
                    got = pdq_in_page(page, data, kind)
                    node_value = hash_image(data, types=["pdq"])[0].value
                    distances.append(bin(int(got["hash"], 16) ^ int(node_value, 16)).count("1"))
                print(f"PDQ, page vs node, {len(distances)} sample photos: median "
                      f"{statistics.median(distances)}, max {max(distances)} bits of 256")
                big = io.BytesIO()
                Image.open(photos()[0]).convert("RGB").resize((4000, 3000)).save(big, "JPEG",
                                                                                  quality=88)
                runs = [pdq_in_page(page, big.getvalue(), "image/jpeg") for _ in range(5)]
                node_value = hash_image(big.getvalue(), types=["pdq"])[0].value
                apart = bin(int(runs[0]["hash"], 16) ^ int(node_value, 16)).count("1")
                print(f"PDQ of a 4000x3000 JPEG in the page (decode + reduce + hash): median "
                      f"{statistics.median(r['ms'] for r in runs):.0f} ms of 5; {apart} bits "
                      "from the node's (which decodes it at 1/2 scale)")
                mib = 128 if args.quick else 512
                took = page.evaluate(DIGEST, mib) / 1000
                print(f"MD5 + SHA-256 of {mib} MiB in 4 MiB chunks: {took:.1f} s "
                      f"({mib / took:.0f} MiB/s)")
                browser.close()
        finally:
            node.stop()


if __name__ == "__main__":
    main()

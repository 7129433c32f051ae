"""What the intake page's browser tests share: a node with the page on, one Chromium for a
module, the sample photos, a generated video, and the reference hashes to compare with."""

from __future__ import annotations

import base64
import glob
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hashmesh.node.matching.hasher import hash_image
from tests.cli_process import NodeProcess, run_cli
from tests.conftest import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
PHOTO_EXTENSIONS = (".png", ".jpg", ".jpeg")


def sample_photos() -> list[Path]:
    """The photographs and images that ship with scikit-image and scikit-learn."""
    import skimage
    import sklearn

    folders = [Path(skimage.__file__).parent / "data",
               Path(sklearn.__file__).parent / "datasets" / "images"]
    found = [Path(p) for folder in folders for p in sorted(glob.glob(str(folder / "*")))
             if p.lower().endswith(PHOTO_EXTENSIONS)]
    assert len(found) >= 20, found
    return found


def node_pdq(data: bytes) -> str:
    """PDQ as the node computes it (pdqhash on Pillow's decode, EXIF orientation applied)."""
    return hash_image(data, types=["pdq"])[0].value


def distance(a: str, b: str) -> int:
    return bin(int(a, 16) ^ int(b, 16)).count("1")


def digests(path: Path) -> tuple[str, str]:
    data = path.read_bytes()
    return hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def make_video(path: Path) -> Path:
    """A real H.264 MP4 (two seconds of a moving gradient), written by ffmpeg through
    imageio-ffmpeg."""
    import imageio.v2 as imageio
    import numpy as np

    frames = []
    for step in range(20):
        y, x = np.mgrid[0:64, 0:64]
        frame = np.stack([(x * 4 + step * 8) % 256, (y * 4) % 256,
                          np.full_like(x, 128)], axis=-1).astype(np.uint8)
        frames.append(frame)
    imageio.mimwrite(path, frames, fps=10, codec="libx264", macro_block_size=16)
    return path


def start_intake_node(folder: Path, *, name: str = "Helpline One",
                      extra: str = "") -> tuple[NodeProcess, dict[str, Any]]:
    port, intake_port = free_port(), free_port()
    run_cli("init", folder, "--name", name, "--port", str(port))
    config = folder / "node.toml"
    with config.open("a") as out:
        out.write(f"\n[intake]\nenabled = true\nport = {intake_port}\n"
                  f"requests_per_minute = 1000\ncases_per_hour = 100\n{extra}")
    node = {"config": config, "url": f"http://127.0.0.1:{port}",
            "intake": f"http://127.0.0.1:{intake_port}",
            "token": (folder / "cli-token").read_text().strip()}
    process = NodeProcess(config, node["url"], folder.parent / f"{folder.name}.log").start()
    return process, node


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def intake_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    process, node = start_intake_node(tmp_path_factory.mktemp("intake") / "a")
    try:
        yield node
    finally:
        process.stop()


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("video") / "clip.mp4")


def screenshot_dir(tmp_path: Path) -> Path:
    shots = Path(os.environ.get("HASHMESH_SCREENSHOT_DIR", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    return shots


def run_axe(page: Any) -> list[dict[str, Any]]:
    """axe-core's violations on the page as it is now (the page's context must bypass CSP,
    which would refuse the injected checker: only the test injects it)."""
    page.add_script_tag(path=str(AXE))
    result: dict[str, Any] = page.evaluate(
        "async () => await axe.run(document, {runOnly: {type: 'tag', values: "
        "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}})")
    return [{"id": v["id"], "impact": v["impact"], "nodes": [n["html"] for n in v["nodes"]]}
            for v in result["violations"]]

"""The intake page in headless Chromium against a real node process with ``[intake]`` on.

- PDQ computed by the page's own JavaScript agrees with the node's pdqhash: exactly on the
  same pixels, and within median 2 / max 10 bits when the browser decodes the photos itself;
  EXIF orientation is applied first; MD5 and SHA-256 are streamed in chunks and agree with
  hashlib.
- Every request the page makes while a real photo and a real video are submitted is recorded:
  all go to the page's own origin, and the only request with a body is the JSON of hashes.
- CSP header, the one CSRF cookie, quick exit, two languages, axe-core, keyboard use.

Screenshots of every page go to ``$HASHMESH_SCREENSHOT_DIR`` (default: the test's tmp dir).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pdqhash
import pytest
from PIL import Image, ImageOps

from tests.node.intake_browser import (
    b64,
    digests,
    distance,
    node_pdq,
    run_axe,
    sample_photos,
    screenshot_dir,
)

pytestmark = pytest.mark.serial

PHOTO = next(p for p in sample_photos() if p.name == "china.jpg")

HASH_BLOB = """async ({data, type}) => {
  const hashing = await import('/static/hashing.js');
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  const bitmap = await hashing.decodeImage(new Blob([bytes], {type}));
  const result = hashing.pdqOfBitmap(bitmap);
  bitmap.close();
  return result;
}"""


@pytest.fixture
def page(browser: Any, intake_node: dict[str, Any]) -> Any:
    context = browser.new_context(viewport={"width": 1000, "height": 900})
    page = context.new_page()
    yield page
    context.close()


def test_pdq_of_the_same_pixels_is_the_reference_hash(page: Any,
                                                      intake_node: dict[str, Any]) -> None:
    page.goto(intake_node["intake"] + "/")
    distances = []
    for path in sample_photos():
        pixels = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGBA"))
        bits, quality = pdqhash.compute(np.ascontiguousarray(pixels[:, :, :3]))
        expected = np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes().hex()
        got = page.evaluate("""async ({data, width, height}) => {
          const pdq = await import('/static/pdq.js');
          const rgba = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
          return pdq.pdqFromRGBA(rgba, width, height);
        }""", {"data": b64(pixels.tobytes()), "width": pixels.shape[1],
               "height": pixels.shape[0]})
        distances.append(distance(got["hash"], expected))
        assert abs(got["quality"] - quality) <= 1, path.name
    assert max(distances) <= 1, distances


def test_pdq_of_photos_decoded_by_the_browser_agrees_with_the_node(
        page: Any, intake_node: dict[str, Any], tmp_path: Path) -> None:
    page.goto(intake_node["intake"] + "/")
    photos = sample_photos()
    # and one large enough that both sides box-reduce it before hashing (4 x 512 px)
    big = tmp_path / "astronaut_x4.png"
    Image.open(next(p for p in photos if p.name == "astronaut.png")).convert("RGB").resize(
        (2048, 2048), Image.Resampling.BICUBIC).save(big)
    found: dict[str, int] = {}
    for path in [*photos, big]:
        data = path.read_bytes()
        kind = "image/png" if path.suffix == ".png" else "image/jpeg"
        got = page.evaluate(HASH_BLOB, {"data": b64(data), "type": kind})
        found[path.name] = distance(got["hash"], node_pdq(data))
    assert statistics.median(found.values()) <= 2, found
    assert max(found.values()) <= 10, found


def test_exif_orientation_is_applied_before_hashing(page: Any, intake_node: dict[str, Any],
                                                     tmp_path: Path) -> None:
    upright = Image.open(PHOTO).convert("RGB")
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # as a camera held sideways stores it
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "sideways.jpg"
    stored.save(path, quality=95, exif=exif)
    data = path.read_bytes()
    page.goto(intake_node["intake"] + "/")
    got = page.evaluate(HASH_BLOB, {"data": b64(data), "type": "image/jpeg"})
    assert distance(got["hash"], node_pdq(data)) <= 10
    ignoring_exif = pdqhash.compute(np.asarray(stored))[0]
    sideways = np.packbits(np.asarray(ignoring_exif, dtype=np.uint8)).tobytes().hex()
    assert distance(got["hash"], sideways) > 64


def test_md5_and_sha256_are_streamed_in_chunks_and_agree_with_hashlib(
        page: Any, intake_node: dict[str, Any], video: Path) -> None:
    import hashlib

    page.goto(intake_node["intake"] + "/")
    size = 9 * 1024 * 1024 + 17  # three 4 MiB chunks
    got = page.evaluate("""async (size) => {
      const hashing = await import('/static/hashing.js');
      const bytes = new Uint8Array(size);
      for (let i = 0; i < size; i++) bytes[i] = (i * 31 + (i >> 9)) & 255;
      const steps = [];
      const digests = await hashing.digestFile(new Blob([bytes], {type: 'video/mp4'}),
                                               (f) => steps.push(f));
      return {...digests, steps, chunk: hashing.CHUNK_BYTES};
    }""", size)
    index = np.arange(size, dtype=np.int64)
    expected = ((index * 31 + (index >> 9)) & 255).astype(np.uint8).tobytes()
    assert got["md5"] == hashlib.md5(expected).hexdigest()
    assert got["sha256"] == hashlib.sha256(expected).hexdigest()
    assert got["chunk"] == 4 * 1024 * 1024
    assert got["steps"][:3] == [got["chunk"] / size, 2 * got["chunk"] / size, 1]
    empty = page.evaluate("""async () => (await import('/static/hashing.js'))
      .digestFile(new Blob([]))""")
    assert empty["md5"] == hashlib.md5(b"").hexdigest()


def test_hashing_a_large_file_keeps_the_page_responsive(page: Any,
                                                        intake_node: dict[str, Any]) -> None:
    """A 96 MiB "video" is hashed while a timer ticks every 20 ms: the longest wait between
    ticks stays far below a frozen page's (hashing it whole would block for seconds)."""
    page.goto(intake_node["intake"] + "/")
    got = page.evaluate("""async () => {
      const hashing = await import('/static/hashing.js');
      const blob = new Blob([new Uint8Array(96 * 1024 * 1024)], {type: 'video/mp4'});
      let last = performance.now(), longest = 0, ticks = 0;
      const timer = setInterval(() => {
        const now = performance.now();
        longest = Math.max(longest, now - last);
        last = now;
        ticks++;
      }, 20);
      const started = performance.now();
      await hashing.digestFile(blob);
      const took = performance.now() - started;
      clearInterval(timer);
      return {longest, ticks, took};
    }""")
    assert got["ticks"] >= 5, got
    assert got["longest"] < max(1000, got["took"] / 4), got


def choose_and_send(page: Any, files: list[Path]) -> dict[str, str]:
    page.set_input_files("#files", [str(f) for f in files])
    page.wait_for_function("() => !document.querySelector('#send').disabled")
    return {"summary": page.inner_text("#send-summary")}


def test_only_the_json_of_hashes_leaves_the_page(page: Any, intake_node: dict[str, Any],
                                                  video: Path, tmp_path: Path) -> None:
    requests: list[Any] = []
    page.on("request", lambda request: requests.append(request))
    shots = screenshot_dir(tmp_path)
    base = intake_node["intake"]
    response = page.goto(base + "/")
    assert response is not None
    csp = response.headers["content-security-policy"]
    assert csp.startswith("default-src 'self';") and "http" not in csp
    page.screenshot(path=str(shots / "intake-new.png"), full_page=True)

    shown = choose_and_send(page, [PHOTO, video])
    assert shown["summary"].startswith("5 fingerprints of 2 files")
    widths = page.eval_on_selector_all("canvas.thumb", "all => all.map(c => c.width)")
    assert len(widths) == 2 and min(widths) > 0, widths  # the photo's and the video's
    page.click("details summary")
    shown_values = page.inner_text("#hash-values")
    page.screenshot(path=str(shots / "intake-chosen.png"), full_page=True)
    with page.expect_response(base + "/api/cases") as answer:
        page.click("#send")
    page.wait_for_selector("#done:not([hidden])")
    page.screenshot(path=str(shots / "intake-done.png"), full_page=True)
    opened = answer.value.json()
    assert page.inner_text("#reference") == opened["reference"]
    assert page.inner_text("#pin") == opened["pin"]
    assert opened["state"] == "pending_review"
    assert page.is_visible("#review-note")

    # blob: URLs (the video's thumbnail reads the chosen file) never leave the browser
    assert all(r.url.startswith((base + "/", f"blob:{base}/")) for r in requests), \
        [r.url for r in requests]
    assert {r.url for r in requests if r.url.startswith(base + "/")} - {
        base + "/favicon.ico"} == {
        base + path for path in ("/", "/static/intake.css", "/static/hash-wasm-md5.js",
                                 "/static/hash-wasm-sha256.js", "/static/intake.js",
                                 "/static/hashing.js", "/static/pdq.js", "/api/cases")}
    with_body = [r for r in requests if r.post_data_buffer]
    assert [(r.method, r.url) for r in with_body] == [("POST", base + "/api/cases")]
    sent = with_body[0]
    assert sent.headers["content-type"] == "application/json"
    body = json.loads(sent.post_data_buffer)
    photo_md5, photo_sha = digests(PHOTO)
    video_md5, video_sha = digests(video)
    photo_hashes, video_hashes = (item["hashes"] for item in body["items"])
    assert list(body) == ["items"] and all(list(item) == ["hashes"] for item in body["items"])
    assert [h["type"] for h in photo_hashes] == ["pdq", "md5", "sha256"]
    assert distance(photo_hashes[0]["value"], node_pdq(PHOTO.read_bytes())) <= 10
    assert photo_hashes[1:] == [{"type": "md5", "value": photo_md5},
                                {"type": "sha256", "value": photo_sha}]
    assert video_hashes == [{"type": "md5", "value": video_md5},
                            {"type": "sha256", "value": video_sha}]
    # what the page showed as "what will be sent" is exactly what was sent
    assert shown_values.split("\n") == [f"{h['type'].upper()} {h['value']}"
                                        for h in photo_hashes + video_hashes]
    assert len(sent.post_data_buffer) < 700 < PHOTO.stat().st_size
    for path in (PHOTO, video):
        raw = path.read_bytes()
        assert raw[100:132] not in sent.post_data_buffer
    cookies = page.context.cookies()
    assert [c["name"] for c in cookies] == ["hm_intake_csrf"]

    for mode, button in (("status", "Check"), ("withdraw", "Withdraw")):
        page.goto(f"{base}/{mode}")
        page.fill("#reference", opened["reference"])
        page.fill("#pin", opened["pin"])
        page.click(f"button:has-text('{button}')")
        page.wait_for_selector("#result:not([hidden])")
        assert page.input_value("#pin") == ""
        page.screenshot(path=str(shots / f"intake-{mode}.png"), full_page=True)
    assert page.get_attribute("#result", "data-state") == "withdrawn"
    page.fill("#reference", opened["reference"])
    page.fill("#pin", "99999999")
    page.click("button:has-text('Withdraw')")
    page.wait_for_function("() => document.querySelector('#message').textContent.length > 0")
    assert "do not match" in page.inner_text("#message")
    page.screenshot(path=str(shots / "intake-wrong-pin.png"), full_page=True)


def test_a_file_that_is_neither_photo_nor_video_is_refused_and_can_be_removed(
        page: Any, intake_node: dict[str, Any], tmp_path: Path) -> None:
    page.goto(intake_node["intake"] + "/")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    page.set_input_files("#files", [str(text)])
    assert "only photos and videos" in page.inner_text("#message")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    page.set_input_files("#files", [str(broken)])
    page.wait_for_function("() => document.querySelector('#message').textContent.includes('read')")
    assert page.query_selector_all("li.file") == []
    page.set_input_files("#files", [str(PHOTO)])
    page.wait_for_function("() => !document.querySelector('#send').disabled")
    page.click("li.file button.remove")
    assert page.query_selector_all("li.file") == [] and page.is_hidden("#confirm")


def test_quick_exit_leaves_for_a_neutral_site_and_replaces_history(
        page: Any, intake_node: dict[str, Any]) -> None:
    page.route("https://www.google.com/**", lambda route: route.fulfill(
        status=200, content_type="text/html", body="<title>neutral</title>"))
    page.goto(intake_node["intake"] + "/status")
    before = page.evaluate("history.length")
    exit_button = page.locator("#quick-exit")
    assert exit_button.is_visible() and exit_button.bounding_box()["y"] < 60
    exit_button.click()
    page.wait_for_url("https://www.google.com/")
    assert page.evaluate("history.length") == before
    page.go_back()
    assert not page.url.startswith(intake_node["intake"])


def test_pages_speak_english_or_spanish(browser: Any, intake_node: dict[str, Any],
                                       tmp_path: Path) -> None:
    context = browser.new_context(locale="es-ES", extra_http_headers={
        "Accept-Language": "es-ES,es;q=0.9"})
    page = context.new_page()
    page.goto(intake_node["intake"] + "/")
    assert page.inner_text("h1") == "Protege tus imágenes"
    assert page.get_attribute("html", "lang") == "es"
    assert page.inner_text("#quick-exit") == "Salida rápida"
    page.screenshot(path=str(screenshot_dir(tmp_path) / "intake-es.png"), full_page=True)
    page.click("a[hreflang=en]")
    assert page.inner_text("h1") == "Protect your images"
    page.click("footer a:has-text('Check a case')")
    assert page.inner_text("h1") == "Check your case"
    context.close()


def test_axe_finds_no_accessibility_violations(browser: Any, intake_node: dict[str, Any],
                                               video: Path) -> None:
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    base = intake_node["intake"]
    found: dict[str, Any] = {}
    for path in ("/", "/status", "/withdraw", "/?lang=es", "/withdraw?lang=es"):
        page.goto(base + path)
        found[path] = run_axe(page)
    page.goto(base + "/")
    choose_and_send(page, [PHOTO, video])
    found["chosen"] = run_axe(page)
    page.click("#send")
    page.wait_for_selector("#done:not([hidden])")
    found["done"] = run_axe(page)
    page.goto(base + "/status")
    page.fill("#reference", "HM-NOPE")
    page.fill("#pin", "1")
    page.press("#pin", "Enter")
    page.wait_for_function("() => document.querySelector('#message').textContent.length > 0")
    found["status error"] = run_axe(page)
    # the checker itself works: an unlabelled field and grey-on-grey text are found
    page.evaluate("""() => { const input = document.createElement('input');
      const faint = document.createElement('p'); faint.textContent = 'faint';
      faint.style.color = '#ccc'; document.querySelector('main').append(input, faint); }""")
    planted = {v["id"] for v in run_axe(page)}
    context.close()
    assert all(v == [] for v in found.values()), found
    assert {"label", "color-contrast"} <= planted, planted


def test_the_page_can_be_used_with_the_keyboard_alone(page: Any, intake_node: dict[str, Any],
                                                        tmp_path: Path) -> None:
    page.goto(intake_node["intake"] + "/")
    order = []
    for _ in range(8):
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.id || "
                                   "document.activeElement.textContent.trim()"))
    assert order[0] == "quick-exit" and "files" in order
    page.set_input_files("#files", [str(PHOTO)])
    page.wait_for_function("() => !document.querySelector('#send').disabled")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    page.screenshot(path=str(screenshot_dir(tmp_path) / "intake-phone.png"), full_page=True)
    page.focus("#files")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "remove"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.tagName") == "SUMMARY"
    page.keyboard.press("Enter")  # opens the list of hashes
    assert page.is_visible("#hash-values li")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "send"
    page.keyboard.press("Enter")
    page.wait_for_selector("#done:not([hidden])")
    assert page.evaluate("document.activeElement.id") == "done"

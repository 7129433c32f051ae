"""Match verdicts (issue 11), on real photographs and through a real node on loopback.

The policy rules are checked directly (``node/matching/verdicts.py``); everything else goes
through the local API of a real node: image queries of re-uploaded photos, hash-only queries,
stricter policies, and quarantine by federated ``not_ncii`` feedback.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp.test_utils import TestClient
from PIL import Image, ImageDraw, ImageFont, ImageOps
from skimage import data as skdata

from hashmesh.node.api.routes import SERVICE_KEY
from hashmesh.node.config.node import node_config_from_text
from hashmesh.node.config.toml_reader import ConfigError
from hashmesh.node.matching.hasher import decode_image, hash_image
from hashmesh.node.matching.image_query import hash_image_query, margin_box, margin_boxes
from hashmesh.node.matching.verdicts import Hit, Policy, item_verdict, strongest
from hashmesh.protocol.errors import SchemaError
from hashmesh.protocol.keys import SigningKey
from tests.conftest import NodeDir
from tests.node.test_config import MINIMAL_NODE
from tests.protocol.builders import Chain, feedback_body

Client = TestClient[Any, Any]


def jpeg(image: Image.Image, quality: int = 85) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return Image.fromarray(skdata.astronaut())


@pytest.fixture(scope="module")
def chelsea() -> Image.Image:
    return Image.fromarray(skdata.chelsea())


@pytest.fixture(scope="module")
def hubble() -> Image.Image:
    """A night sky: a black background of its own, as black as a caption bar."""
    return Image.fromarray(skdata.hubble_deep_field())


@pytest.fixture(scope="module")
def retina() -> Image.Image:
    """A fundus photo: the picture's own black edge is as flat as a drawn bar."""
    return Image.fromarray(skdata.retina())


def dark_caption(image: Image.Image, top: bool = True, lines: int = 1) -> Image.Image:
    """A meme's black bar (12% of the height) with white text, above or below the photo."""
    bar = image.height * 12 // 100
    canvas = Image.new("RGB", (image.width, image.height + bar), "black")
    canvas.paste(image, (0, bar if top else 0))
    font = ImageFont.load_default(size=bar * 6 // 10 // lines)
    start = 0 if top else image.height
    for line in range(lines):
        ImageDraw.Draw(canvas).text((image.width // 2, start + bar * (line + 1) // (lines + 1)),
                                    "when you see it", fill="white", font=font, anchor="mm")
    return canvas


async def add_photo(api: Client, image: Image.Image) -> str:
    """Store a photo's perceptual hashes as one item; its ref."""
    hashes = [{"type": h.type, "value": h.value} for h in hash_image(jpeg(image, 95))
              if h.type in ("pdq", "phash", "dhash", "ahash", "whash")]
    response = await api.post("/v1/records", json={"items": [{"hashes": hashes}]})
    assert response.status == 201, await response.text()
    return str((await response.json())["records"][0]["items"][0])


async def match_image(api: Client, data: bytes, query: str = "") -> dict[str, Any]:
    response = await api.post(f"/v1/match/image{query}", data=data)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def match_hashes(api: Client, hashes: list[dict[str, Any]], **extra: Any
                       ) -> dict[str, Any]:
    response = await api.post("/v1/match", json={"hashes": hashes, **extra})
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


# ---- the policy itself


def test_one_short_hash_is_weak_two_independent_ones_are_a_match() -> None:
    policy = Policy()
    assert item_verdict([Hit("whash", 3, 8)], policy) == "weak"
    assert item_verdict([Hit("phash", 3, 10), Hit("dhash", 4, 10)], policy) == "match"
    # aHash and wHash threshold the same low-pass thumbnail: together they are one witness.
    assert item_verdict([Hit("ahash", 3, 8), Hit("whash", 2, 8)], policy) == "weak"
    assert item_verdict([Hit("pdq", 30, 31)], policy) == "match"
    assert item_verdict([Hit("md5", 0, 0)], policy) == "match"


def test_a_query_may_tighten_the_policy_but_never_loosen_it() -> None:
    policy = Policy()
    strict = policy.stricter(3, False)
    assert item_verdict([Hit("phash", 3, 10), Hit("dhash", 4, 10)], strict) == "weak"
    assert item_verdict([Hit("pdq", 3, 31, "flip_horizontal")], strict) == "weak"
    assert item_verdict([Hit("pdq", 3, 31)], strict) == "match"
    with pytest.raises(SchemaError, match="looser"):
        policy.stricter(1, None)
    assert strongest(["weak", "match", "disputed"]) == "match"
    assert strongest([]) == "none"


def test_match_section_of_node_toml_sets_the_policy(tmp_path: Path) -> None:
    text = MINIMAL_NODE + "[match]\ncorroboration = 3\ntransforms = false\ndispute_origins = 4\n"
    config = node_config_from_text(text, tmp_path / "node.toml")
    assert Policy.from_config(config.match) == Policy(3, False, 4)
    assert Policy.from_config(node_config_from_text(MINIMAL_NODE, tmp_path / "n.toml").match
                              ) == Policy(2, True, 2)
    tighter = node_config_from_text(MINIMAL_NODE + "[match.corroborating]\nphash = 3\n",
                                    tmp_path / "node.toml")
    assert dict(Policy.from_config(tighter.match).corroborating) == {
        "phash": 3, "dhash": 5, "ahash": 4, "whash": 4}
    with pytest.raises(ConfigError, match="does not corroborate"):
        node_config_from_text(MINIMAL_NODE + "[match.corroborating]\npdq = 3\n",
                              tmp_path / "node.toml")


def test_margin_of_a_padded_photo_is_found_to_the_pixel(astronaut: Image.Image) -> None:
    canvas = Image.new("RGB", (700, 660), "white")
    canvas.paste(astronaut, (120, 90))
    assert margin_box(np.asarray(canvas)) == (120, 90, 632, 602)
    assert margin_box(np.asarray(astronaut)) is None


def test_caption_bar_on_a_photo_with_a_black_background_is_found_by_its_text(
        hubble: Image.Image) -> None:
    bar = hubble.height * 12 // 100
    above = np.asarray(decode_image(jpeg(dark_caption(hubble), 90)))
    # By colour alone the bar runs on into the night sky: no box before the text search.
    assert (0, bar, hubble.width, hubble.height + bar) in margin_boxes(above)
    below = np.asarray(decode_image(jpeg(dark_caption(hubble, top=False, lines=2), 90)))
    assert (0, 0, hubble.width, hubble.height) in margin_boxes(below)
    # The sky alone has no margin to cut.
    assert margin_boxes(np.asarray(decode_image(jpeg(hubble, 90)))) == []


# ---- image queries through a real node


def caption(image: Image.Image) -> Image.Image:
    bar = image.height // 8
    canvas = Image.new("RGB", (image.width, image.height + bar), "white")
    canvas.paste(image, (0, 0))
    ImageDraw.Draw(canvas).text((10, image.height + bar // 3), "look at this", fill="black")
    return canvas


def padded(image: Image.Image) -> Image.Image:
    canvas = Image.new("RGB", (image.width * 3 // 2, image.height * 3 // 2), "black")
    canvas.paste(image, (image.width // 5, image.height // 6))
    return canvas


@pytest.mark.parametrize(("kind", "make", "transform"), [
    ("resize", lambda im: im.resize((im.width // 2, im.height // 2)), None),
    ("jpeg q40", lambda im: im, None),
    ("grayscale", ImageOps.grayscale, None),
    ("caption", caption, "trimmed"),
    ("flip", ImageOps.mirror, "flip_horizontal"),
    ("rotate 90", lambda im: im.transpose(Image.Transpose.ROTATE_90), "rotate270"),
    ("rotate 180", lambda im: im.transpose(Image.Transpose.ROTATE_180), "rotate180"),
    ("padding", padded, "trimmed"),
])
async def test_reuploaded_photo_matches_and_says_which_transform(
        api: Client, astronaut: Image.Image, chelsea: Image.Image, kind: str, make: Any,
        transform: str | None) -> None:
    ref = await add_photo(api, astronaut)
    await add_photo(api, chelsea)  # another photo, which must not match
    answer = await match_image(api, jpeg(make(astronaut), 40 if kind == "jpeg q40" else 85))
    assert answer["verdict"] == "match"
    [item] = answer["items"]
    assert item["item"] == ref and item["verdict"] == "match"
    pdq_hits = {h.get("transform", "original") for h in item["hits"] if h["type"] == "pdq"}
    if transform is None:
        assert "original" in pdq_hits or item["verdict"] == "match"
    else:
        assert any(t.startswith(transform) for t in pdq_hits), pdq_hits


async def test_captioned_dark_photos_match_their_own_record_and_no_other(
        api: Client, astronaut: Image.Image, hubble: Image.Image, retina: Image.Image) -> None:
    """bench/quality_bench.py's two caption misses before the text search: a black bar above
    a night sky and above a fundus photo, both on black backgrounds of their own."""
    refs = {"hubble": await add_photo(api, hubble), "retina": await add_photo(api, retina)}
    await add_photo(api, astronaut)
    for name, photo in (("hubble", hubble), ("retina", retina)):
        answer = await match_image(api, jpeg(dark_caption(photo), 90))
        assert answer["verdict"] == "match", name
        assert [item["item"] for item in answer["items"]] == [refs[name]], name
        transforms = {h.get("transform") for h in answer["items"][0]["hits"]
                      if h["type"] == "pdq"}
        assert any(t and t.startswith("trimmed") for t in transforms), (name, transforms)


async def test_a_captioned_photo_that_is_not_stored_matches_nothing(
        api: Client, hubble: Image.Image, retina: Image.Image, chelsea: Image.Image) -> None:
    await add_photo(api, hubble)  # black background, like the other photo's caption bar
    await add_photo(api, chelsea)
    answer = await match_image(api, jpeg(dark_caption(retina), 90))
    assert answer["verdict"] != "match"
    assert all(item["verdict"] != "match" for item in answer["items"])


async def test_a_different_photo_gets_no_verdict_and_variants_stay_out_of_results(
        api: Client, astronaut: Image.Image, chelsea: Image.Image) -> None:
    await add_photo(api, astronaut)
    answer = await match_image(api, jpeg(chelsea))
    assert answer["verdict"] == "none" and answer["items"] == []
    # Results: one per own hash of the image; variants appear only when they found something.
    assert [r["query"]["type"] for r in answer["results"]] == [h["type"] for h in
                                                               answer["hashes"]]


async def test_stricter_image_query_counts_a_flip_as_weak(
        api: Client, astronaut: Image.Image) -> None:
    await add_photo(api, astronaut)
    answer = await match_image(api, jpeg(ImageOps.mirror(astronaut)),
                               "?policy.transforms=false")
    assert answer["verdict"] == "weak"
    assert answer["policy"]["transforms"] is False


# ---- hash-only queries


async def test_hash_only_verdicts_follow_the_policy(api: Client, astronaut: Image.Image) -> None:
    await add_photo(api, astronaut)
    own = {h.type: h.value for h in hash_image(jpeg(astronaut, 70))}
    one = await match_hashes(api, [{"type": "whash", "value": own["whash"]}])
    assert one["verdict"] == "weak"
    assert one["results"][0]["matches"][0]["verdict"] == "weak"
    same_family = [{"type": t, "value": own[t]} for t in ("ahash", "whash")]
    assert (await match_hashes(api, same_family))["verdict"] == "weak"
    two = [{"type": t, "value": own[t]} for t in ("phash", "dhash")]
    assert (await match_hashes(api, two))["verdict"] == "match"
    assert (await match_hashes(api, two, policy={"corroboration": 3}))["verdict"] == "weak"
    response = await api.post("/v1/match", json={"hashes": two, "policy": {"corroboration": 1}})
    assert response.status == 400
    assert (await response.json())["error"]["field"] == "policy.corroboration"


async def test_hash_only_query_may_send_a_platforms_dihedral_set(
        api: Client, astronaut: Image.Image) -> None:
    ref = await add_photo(api, astronaut)
    _, queries = hash_image_query(jpeg(ImageOps.mirror(astronaut)))
    pdqs = [{"type": "pdq", "value": q.value, "transform": q.transform}
            for q in queries if q.type == "pdq" and not q.transform.startswith("trimmed")]
    answer = await match_hashes(api, pdqs)
    [item] = answer["items"]
    assert item["item"] == ref and item["verdict"] == "match"
    assert item["hits"][0]["transform"] == "flip_horizontal"
    response = await api.post("/v1/match", json={"hashes": [
        {"type": "phash", "value": "0" * 16, "transform": "rotate90"}]})
    assert response.status == 400


# ---- quarantine


async def test_not_ncii_from_two_origins_disputes_until_the_origin_confirms(
        api: Client, node_dir: NodeDir, astronaut: Image.Image) -> None:
    ref = await add_photo(api, astronaut)
    service = api.app[SERVICE_KEY]
    query = [{"type": h.type, "value": h.value} for h in hash_image(jpeg(astronaut, 70))
             if h.type == "pdq"]
    others = [Chain(SigningKey(bytes([n] * 32))) for n in (7, 8)]
    first = others[0].add(feedback_body(ref, "not_ncii"))
    await service.store.write(lambda s: s.ingest([first], source="peer"))
    assert (await match_hashes(api, query))["verdict"] == "match"  # one origin is not enough

    second = others[1].add(feedback_body(ref, "not_ncii"))
    await service.store.write(lambda s: s.ingest([second], source="peer"))
    answer = await match_hashes(api, query)
    assert answer["verdict"] == "disputed"
    assert answer["items"][0]["not_ncii_origins"] == 2
    status = await (await api.get("/v1/status")).json()
    assert status["disputed"] == [{"target": ref,
                                   "not_ncii": sorted(c.origin for c in others)}]

    response = await api.post("/v1/feedback", json={"target": ref, "verdict": "confirmed"})
    assert response.status == 201
    assert (await match_hashes(api, query))["verdict"] == "match"
    assert (await (await api.get("/v1/status")).json())["disputed"] == []
    assert node_dir.origin not in {c.origin for c in others}

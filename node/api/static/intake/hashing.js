// Hashing a chosen file where it is: MD5 and SHA-256 of its bytes (vendored hash-wasm,
// read in chunks so a 2 GB video is never held whole in memory and the page stays
// responsive), and for images PDQ of the picture as displayed (EXIF orientation applied,
// as node/matching/hasher.py does). Nothing here sends anything anywhere.

import { pdqFromRGBA } from "./pdq.js";

export const CHUNK_BYTES = 4 * 1024 * 1024;
export const MAX_PIXELS = 100_000_000; // as the node's hasher (DEFAULT_MAX_PIXELS)

export function kindOf(file) {
  if (file.type.startsWith("image/")) return "image";
  if (file.type.startsWith("video/")) return "video";
  return null;
}

/** MD5 and SHA-256 of a File or Blob, one chunk in memory at a time. `onProgress(fraction)`
 * is called after each chunk; `isCancelled()` stops early (returns null). */
export async function digestFile(file, onProgress = () => {}, isCancelled = () => false) {
  const md5 = await globalThis.hashwasm.createMD5();
  const sha256 = await globalThis.hashwasm.createSHA256();
  md5.init();
  sha256.init();
  for (let offset = 0; offset < file.size; offset += CHUNK_BYTES) {
    if (isCancelled()) return null;
    const chunk = new Uint8Array(await file.slice(offset, offset + CHUNK_BYTES).arrayBuffer());
    md5.update(chunk);
    sha256.update(chunk);
    onProgress(Math.min(1, (offset + chunk.length) / file.size));
  }
  onProgress(1);
  return { md5: md5.digest("hex"), sha256: sha256.digest("hex") };
}

/** Decode an image upright (EXIF orientation applied); throws if it is not one. An embedded
 * colour profile is not applied: the node's decoder (Pillow) ignores it too, so both hash the
 * same pixels. */
export async function decodeImage(blob) {
  const bitmap = await createImageBitmap(blob, {
    imageOrientation: "from-image",
    colorSpaceConversion: "none",
  });
  if (bitmap.width * bitmap.height > MAX_PIXELS) {
    bitmap.close();
    throw new Error("too many pixels");
  }
  return bitmap;
}

/** The RGBA pixels of a decoded image. */
export function pixelsOf(bitmap) {
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(bitmap, 0, 0);
  return context.getImageData(0, 0, bitmap.width, bitmap.height).data;
}

export function pdqOfBitmap(bitmap) {
  return pdqFromRGBA(pixelsOf(bitmap), bitmap.width, bitmap.height);
}

/** A small picture of the image on `canvas`, drawn here: the image goes nowhere. */
export function drawThumbnail(bitmap, canvas, size = 96) {
  const scale = Math.min(size / bitmap.width, size / bitmap.height, 1);
  canvas.width = Math.max(1, Math.round(bitmap.width * scale));
  canvas.height = Math.max(1, Math.round(bitmap.height * scale));
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
}

/** A frame of a video drawn on `canvas`, read from a local object URL (blob:, which never
 * leaves the device); false if the browser cannot decode the video (the hashes do not need it). */
export async function drawVideoThumbnail(file, canvas, size = 96) {
  const url = URL.createObjectURL(file);
  const video = document.createElement("video");
  video.muted = true;
  video.preload = "metadata";
  try {
    await new Promise((resolve, reject) => {
      video.addEventListener("loadeddata", resolve, { once: true });
      video.addEventListener("error", reject, { once: true });
      video.src = url;
    });
    video.currentTime = Math.min(0.5, (video.duration || 0) / 2);
    await new Promise((resolve) => video.addEventListener("seeked", resolve, { once: true }));
    const scale = Math.min(size / video.videoWidth, size / video.videoHeight);
    canvas.width = Math.max(1, Math.round(video.videoWidth * scale));
    canvas.height = Math.max(1, Math.round(video.videoHeight * scale));
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    return true;
  } catch {
    return false;
  } finally {
    video.removeAttribute("src");
    video.load();
    URL.revokeObjectURL(url);
  }
}

/** Every hash of one file as the case request carries it: [{type, value[, quality]}]. */
export async function hashesOf(file, bitmap, onProgress, isCancelled) {
  const hashes = [];
  if (bitmap) {
    const { hash, quality } = pdqOfBitmap(bitmap);
    hashes.push({ type: "pdq", value: hash, quality });
  }
  const digests = await digestFile(file, onProgress, isCancelled);
  if (digests === null) return null;
  hashes.push({ type: "md5", value: digests.md5 }, { type: "sha256", value: digests.sha256 });
  return hashes;
}

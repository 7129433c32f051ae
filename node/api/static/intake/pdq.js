// PDQ, Meta's 256-bit perceptual image hash, written for the intake page so an image can be
// hashed where it is, in the browser. It follows the algorithm of Meta's reference
// (facebook/ThreatExchange, pdq/): luma, two passes of Jarosz box filters along rows then
// columns, a 64x64 decimation, the 16x16 corner of a DCT, and one bit per coefficient: is it
// above the median? tests/node/test_intake_pdq.py holds it to the pdqhash package.
//
// Before hashing, the image is box-reduced by an integer factor so its short side stays at
// least WORKING_SHORT_SIDE pixels, as node/matching/hasher.py does, so that this page and the
// node hash the same picture at (nearly) the same size.

export const WORKING_SHORT_SIDE = 768;
const LUMA_R = 0.299;
const LUMA_G = 0.587;
const LUMA_B = 0.114;

// D[i][k] = sqrt(2/64) cos(pi/128 (i+1)(2k+1)) for i < 16, k < 64: rows 1..16 of the DCT-II.
const DCT = (() => {
  const matrix = new Float64Array(16 * 64);
  const scale = Math.sqrt(2 / 64);
  for (let i = 0; i < 16; i++) {
    for (let k = 0; k < 64; k++) {
      matrix[i * 64 + k] = scale * Math.cos((Math.PI / 128) * (i + 1) * (2 * k + 1));
    }
  }
  return matrix;
})();

/** The integer factor node/matching/hasher.py reduces an image of this size by. */
export function reductionFactor(width, height) {
  const factor = Math.floor(Math.min(width, height) / WORKING_SHORT_SIDE);
  return factor < 2 ? 1 : factor;
}

/**
 * Luma of RGBA pixels (ImageData.data), box-reduced by `factor`: each output pixel is the
 * rounded mean of each channel over a factor x factor block (a partial block at the right or
 * bottom edge averages what it has, as Pillow's reduce does), then weighted to luma.
 */
export function lumaOf(rgba, width, height, factor = 1) {
  const outWidth = Math.ceil(width / factor);
  const outHeight = Math.ceil(height / factor);
  const luma = new Float32Array(outWidth * outHeight);
  for (let oy = 0; oy < outHeight; oy++) {
    const y0 = oy * factor;
    const y1 = Math.min(y0 + factor, height);
    for (let ox = 0; ox < outWidth; ox++) {
      const x0 = ox * factor;
      const x1 = Math.min(x0 + factor, width);
      let r = 0;
      let g = 0;
      let b = 0;
      for (let y = y0; y < y1; y++) {
        let p = (y * width + x0) * 4;
        for (let x = x0; x < x1; x++, p += 4) {
          r += rgba[p];
          g += rgba[p + 1];
          b += rgba[p + 2];
        }
      }
      const n = (y1 - y0) * (x1 - x0);
      if (n > 1) {
        r = Math.round(r / n);
        g = Math.round(g / n);
        b = Math.round(b / n);
      }
      luma[oy * outWidth + ox] = LUMA_R * r + LUMA_G * g + LUMA_B * b;
    }
  }
  return { luma, width: outWidth, height: outHeight };
}

/** A box filter of `window` samples along one line of `length` samples, `stride` apart;
 * near the ends the window shrinks to what is inside the line (Meta's box1DFloat). */
function boxLine(input, output, start, length, stride, window) {
  const half = Math.floor((window + 2) / 2);
  let sum = 0;
  let count = 0;
  let left = start;
  let right = start;
  let out = start;
  for (let i = 0; i < half - 1; i++, right += stride) {
    sum += input[right];
    count++;
  }
  for (let i = 0; i < window - half + 1; i++, right += stride, out += stride) {
    sum += input[right];
    count++;
    output[out] = sum / count;
  }
  for (let i = 0; i < length - window; i++, left += stride, right += stride, out += stride) {
    sum += input[right] - input[left];
    output[out] = sum / count;
  }
  for (let i = 0; i < half - 1; i++, left += stride, out += stride) {
    sum -= input[left];
    count--;
    output[out] = sum / count;
  }
}

function windowFor(dimension) {
  return Math.floor((dimension + 127) / 128);
}

/** Two X-then-Y box passes: a tent filter that makes the 64x64 decimation fair. */
function jarosz(buffer, scratch, width, height) {
  const alongRows = windowFor(width);
  const alongCols = windowFor(height);
  for (let pass = 0; pass < 2; pass++) {
    for (let y = 0; y < height; y++) boxLine(buffer, scratch, y * width, width, 1, alongRows);
    for (let x = 0; x < width; x++) boxLine(scratch, buffer, x, height, width, alongCols);
  }
}

function decimate(buffer, width, height) {
  const out = new Float64Array(64 * 64);
  for (let i = 0; i < 64; i++) {
    const y = Math.floor(((i + 0.5) * height) / 64);
    for (let j = 0; j < 64; j++) {
      const x = Math.floor(((j + 0.5) * width) / 64);
      out[i * 64 + j] = buffer[y * width + x];
    }
  }
  return out;
}

/** PDQ's quality: how many significant gradients the 64x64 image has, 0..100. */
function quality(image) {
  let sum = 0;
  for (let i = 0; i < 63; i++) {
    for (let j = 0; j < 64; j++) {
      sum += Math.abs(Math.trunc(((image[i * 64 + j] - image[(i + 1) * 64 + j]) * 100) / 255));
    }
  }
  for (let i = 0; i < 64; i++) {
    for (let j = 0; j < 63; j++) {
      sum += Math.abs(Math.trunc(((image[i * 64 + j] - image[i * 64 + j + 1]) * 100) / 255));
    }
  }
  return Math.min(100, Math.trunc(sum / 90));
}

/** B = D A D^T: the 16x16 low-frequency DCT coefficients, without the DC row and column. */
function dct16(image) {
  const half = new Float64Array(16 * 64);
  for (let i = 0; i < 16; i++) {
    for (let j = 0; j < 64; j++) {
      let sum = 0;
      for (let k = 0; k < 64; k++) sum += DCT[i * 64 + k] * image[k * 64 + j];
      half[i * 64 + j] = sum;
    }
  }
  const out = new Float64Array(256);
  for (let i = 0; i < 16; i++) {
    for (let j = 0; j < 16; j++) {
      let sum = 0;
      for (let k = 0; k < 64; k++) sum += half[i * 64 + k] * DCT[j * 64 + k];
      out[i * 16 + j] = sum;
    }
  }
  return out;
}

/** Bit i*16+j is set when coefficient (i, j) is above the median (the 128th smallest, as
 * Torben's median in the reference gives). The hex string puts bit 255 first, like the
 * reference's Hash256 and node/matching/hasher.py. */
function toHex(coefficients) {
  const median = Float64Array.from(coefficients).sort()[127];
  let hex = "";
  for (let nibble = 0; nibble < 64; nibble++) {
    let value = 0;
    for (let b = 0; b < 4; b++) {
      const bit = 255 - (nibble * 4 + b);
      value = (value << 1) | (coefficients[bit] > median ? 1 : 0);
    }
    hex += value.toString(16);
  }
  return hex;
}

/** PDQ of a luma image (row-major, width x height); the buffer is used as scratch. */
export function pdqFromLuma(luma, width, height) {
  const buffer = Float32Array.from(luma);
  jarosz(buffer, new Float32Array(buffer.length), width, height);
  const small = decimate(buffer, width, height);
  return { hash: toHex(dct16(small)), quality: quality(small) };
}

/** PDQ of RGBA pixels as a canvas gives them, reduced the way the node reduces. */
export function pdqFromRGBA(rgba, width, height) {
  const { luma, width: w, height: h } = lumaOf(rgba, width, height, reductionFactor(width, height));
  return pdqFromLuma(luma, w, h);
}

// Tiles cut exactly as artifact_removal/tiling.py `run_tiled` cuts them, so a tiled image in the page matches the
// Python path: the image is padded (edge replication) to a multiple of `align`, the network's stride and a
// multiple of the 8x8 JPEG grid; cores of at most `tile` px, of nearly equal size, start on multiples of it; each
// is read with `context` px (rounded up to the grid) on every side, all windows the same size (moved inward at the
// edges), and only the core is kept. Images are RGBA bytes; the network's input and output are planar float RGB
// in [0, 1].

/** Core spans [start, stop) covering [0, length) with cores of at most `tile` px starting on multiples of `align`,
 * as few as can be and of nearly equal size (every window is computed whole: a thin last core would cost a full
 * one). */
export function tileSpans(length, tile, align = 32) {
  const size = Math.max(align, Math.floor(tile / align) * align), spans = [];
  const core = length > size ? Math.ceil(Math.ceil(length / Math.ceil(length / size)) / align) * align : size;
  for (let s = 0; s < length; s += core) spans.push([s, Math.min(s + core, length)]);
  return spans;
}

/** The windows an h x w image is run in, row by row: {top, left, height, width} read from the image (rows and
 * columns past its edge repeat the last one) and the core {y0, y1, x0, x1} kept from each. tile=0: the whole
 * image in one window, which the network pads itself. */
export function tileWindows(h, w, tile, context, align = 32) {
  if (!tile) return [{top: 0, left: 0, height: h, width: w, y0: 0, y1: h, x0: 0, x1: w}];
  const hp = h + (align - h % align) % align, wp = w + (align - w % align) % align;
  const pad = Math.ceil(context / align) * align;
  const rows = tileSpans(hp, tile, align), cols = tileSpans(wp, tile, align);
  const height = Math.min(hp, rows[0][1] + 2 * pad), width = Math.min(wp, cols[0][1] + 2 * pad);
  const windows = [];
  for (const [y0, y1] of rows) {
    for (const [x0, x1] of cols) {
      const top = Math.min(Math.max(0, y0 - pad), hp - height), left = Math.min(Math.max(0, x0 - pad), wp - width);
      windows.push({top, left, height, width, y0, y1: Math.min(y1, h), x0, x1: Math.min(x1, w)});
    }
  }
  return windows;
}

/** A window of the RGBA image as a planar float RGB array in [0, 1], the edge repeated past the image. */
export function readWindow(rgba, imageWidth, imageHeight, {top, left, height, width}) {
  const plane = height * width, out = new Float32Array(3 * plane);
  for (let y = 0; y < height; y++) {
    const row = Math.min(top + y, imageHeight - 1) * imageWidth;
    for (let x = 0; x < width; x++) {
      const i = 4 * (row + Math.min(left + x, imageWidth - 1)), o = y * width + x;
      out[o] = rgba[i] / 255;
      out[o + plane] = rgba[i + 1] / 255;
      out[o + 2 * plane] = rgba[i + 2] / 255;
    }
  }
  return out;
}

/** Copy a window's core from the network output `restored` (planar RGB of the window) into `out` (planar RGB of the
 * image); `gray` stores the mean of the three channels in each, as the Python path averages a gray image back. */
export function pasteCore(restored, window, out, imageWidth, imageHeight, gray) {
  const wplane = window.height * window.width, plane = imageWidth * imageHeight;
  for (let y = window.y0; y < window.y1; y++) {
    for (let x = window.x0; x < window.x1; x++) {
      const i = (y - window.top) * window.width + (x - window.left), o = y * imageWidth + x;
      const [r, g, b] = [restored[i], restored[i + wplane], restored[i + 2 * wplane]];
      const mean = gray ? (r + g + b) / 3 : 0;
      out[o] = gray ? mean : r;
      out[o + plane] = gray ? mean : g;
      out[o + 2 * plane] = gray ? mean : b;
    }
  }
}

/** Restore an RGBA image window by window with `run` (planar float RGB, height, width -> planar float RGB);
 * returns the image's restored planar RGB. `onWindow(done, total)` reports progress. */
export async function runTiled(run, rgba, width, height, {tile, context, align, gray, onWindow}) {
  const windows = tileWindows(height, width, tile, context, align), out = new Float32Array(3 * width * height);
  onWindow?.(0, windows.length);
  for (const [i, window] of windows.entries()) {
    const restored = await run(readWindow(rgba, width, height, window), window.height, window.width);
    pasteCore(restored, window, out, width, height, gray);
    onWindow?.(i + 1, windows.length);
  }
  return out;
}

// What the page must know from a file's bytes before decoding it: its format (so that a file that is not an
// image gets a clear message), whether it is gray (run as three equal channels and averaged back, as the Python
// path does) and, for a JPEG, the quality its quantization tables give (artifact_removal.image_io).

// The example tables of the JPEG standard (Annex K) that libjpeg scales by its quality setting, natural order.
const IJG_BASE = [
  [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29,
    51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121,
    120, 101, 72, 92, 95, 98, 112, 100, 103, 99],
  [17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99,
    ...Array(36).fill(99)],
];

// ZIGZAG[n]: where the coefficient at natural position n is stored in a DQT segment.
const ZIGZAG = [0, 1, 5, 6, 14, 15, 27, 28, 2, 4, 7, 13, 16, 26, 29, 42, 3, 8, 12, 17, 25, 30, 41, 43, 9, 11, 18,
  24, 31, 40, 44, 53, 10, 19, 23, 32, 39, 45, 52, 54, 20, 22, 33, 38, 46, 51, 55, 60, 21, 34, 37, 47, 50, 56, 59, 61,
  35, 36, 48, 49, 57, 58, 62, 63];

const SIGNATURES = [
  ['jpeg', [0xFF, 0xD8, 0xFF]], ['png', [0x89, 0x50, 0x4E, 0x47]], ['gif', [0x47, 0x49, 0x46, 0x38]],
  ['webp', [0x52, 0x49, 0x46, 0x46, , , , , 0x57, 0x45, 0x42, 0x50]], ['bmp', [0x42, 0x4D]],
  ['avif', [, , , , 0x66, 0x74, 0x79, 0x70, 0x61, 0x76, 0x69]],
  ['tiff', [0x49, 0x49, 0x2A, 0x00]], ['tiff', [0x4D, 0x4D, 0x00, 0x2A]],
];

/** The format of an image file from its first bytes ('jpeg', 'png', 'gif', 'webp', 'bmp', 'avif', 'tiff'), or null. */
export function sniffFormat(bytes) {
  const match = ([, sig]) => sig.every((b, i) => b === undefined || bytes[i] === b);
  return SIGNATURES.find(match)?.[0] ?? null;
}

/** The luma and chroma tables (natural order) libjpeg writes at `quality` (baseline), as image_io.ijg_tables. */
export function ijgTables(quality) {
  const scale = quality < 50 ? Math.floor(5000 / quality) : 200 - 2 * quality;
  return IJG_BASE.map(t => t.map(v => Math.min(255, Math.max(1, Math.floor((v * scale + 50) / 100)))));
}

const IJG_LOGS = Array.from({length: 100}, (_, i) => ijgTables(i + 1).map(t => t.map(Math.log)));

/** The libjpeg quality (1-100) whose tables are nearest to `tables` ({0: luma, 1: chroma}, natural order) by mean
 * absolute log-ratio: image_io.quality_from_tables, so the page tells a model what the Python path tells it. */
export function qualityFromTables(tables) {
  const own = [0, 1].filter(k => tables[k]).map(k => tables[k].map(v => Math.log(Math.max(v, 1))));
  let best = 0, bestDistance = Infinity;
  IJG_LOGS.forEach((ijg, i) => {
    const distance = own.reduce((d, t, k) => d + t.reduce((s, v, j) => s + Math.abs(ijg[k][j] - v), 0) / 64, 0);
    if (distance < bestDistance) [best, bestDistance] = [i, distance];
  });
  return best + 1;
}

function readTables(segment, tables) {
  for (let p = 0; p < segment.length;) {
    const wide = segment[p] >> 4, id = segment[p] & 15, size = wide ? 2 : 1;
    if (p + 1 + 64 * size > segment.length) throw new Error('bad quantization table');
    const value = k => wide ? (segment[p + 1 + 2 * k] << 8) | segment[p + 2 + 2 * k] : segment[p + 1 + k];
    tables[id] = ZIGZAG.map(value);
    p += 1 + 64 * size;
  }
}

const isFrameHeader = m => m >= 0xC0 && m <= 0xCF && m !== 0xC4 && m !== 0xC8 && m !== 0xCC;

/** The quantization tables and component count of a JPEG, from its markers up to the first scan (as Pillow reads
 * them); `quality` is null when the file has no tables. */
export function jpegInfo(bytes) {
  const tables = {};
  let components = 0;
  for (let i = 2; i + 4 <= bytes.length;) {
    if (bytes[i] !== 0xFF) throw new Error('damaged JPEG markers');
    const marker = bytes[i + 1];
    if (marker === 0xFF) { i += 1; continue; }  // fill byte
    if (marker === 0x01 || (marker >= 0xD0 && marker <= 0xD8)) { i += 2; continue; }  // markers without a length
    if (marker === 0xDA) break;  // start of scan: the headers are over
    const end = i + 2 + ((bytes[i + 2] << 8) | bytes[i + 3]), segment = bytes.subarray(i + 4, end);
    if (marker === 0xDB) readTables(segment, tables);
    else if (isFrameHeader(marker)) components = segment[5];
    i = end;
  }
  return {tables, components, quality: Object.keys(tables).length ? qualityFromTables(tables) : null};
}

/** {format, gray, quality} of an image file's bytes; format is null for a file that is not an image. Throws on a
 * JPEG whose headers are damaged, as Pillow refuses it. */
export function fileInfo(bytes) {
  const format = sniffFormat(bytes);
  if (format === 'png') return {format, gray: bytes[25] === 0 || bytes[25] === 4, quality: null};
  if (format !== 'jpeg') return {format, gray: false, quality: null};
  const {components, quality} = jpegInfo(bytes);
  return {format, gray: components === 1, quality};
}

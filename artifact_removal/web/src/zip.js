// A zip archive of files stored as they are: PNG and JPEG are already compressed, so deflating them again would
// cost time for nothing. Plain zip (no zip64): each file and the whole archive must stay under 4 GiB.

const CRC_TABLE = Array.from({length: 256}, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

/** The CRC-32 of `bytes`, as zip and PNG use it. */
export function crc32(bytes) {
  let c = 0xFFFFFFFF;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xFF] ^ (c >>> 8);
  return (c ^ 0xFFFFFFFF) >>> 0;
}

function header(fields) {
  const out = new DataView(new ArrayBuffer(fields.reduce((n, [size]) => n + size, 0)));
  let p = 0;
  for (const [size, value] of fields) {
    if (size === 2) out.setUint16(p, value, true); else out.setUint32(p, value, true);
    p += size;
  }
  return new Uint8Array(out.buffer);
}

/** A Blob holding a zip of `files` ([{name, bytes: Uint8Array}]), stored uncompressed, dated now. */
export function zipFiles(files, date = new Date()) {
  const time = (date.getHours() << 11) | (date.getMinutes() << 5) | (date.getSeconds() >> 1);
  const day = ((date.getFullYear() - 1980) << 9) | ((date.getMonth() + 1) << 5) | date.getDate();
  const parts = [], directory = [];
  let offset = 0;
  for (const {name, bytes} of files) {
    const encoded = new TextEncoder().encode(name), crc = crc32(bytes), size = bytes.length;
    if (size >= 2 ** 32 || offset >= 2 ** 32) {
      throw new Error('the results are too large for one zip: download them one by one');
    }
    // version 2.0, flag 0x800: the name is UTF-8, method 0: stored; CRC, sizes, name length, no extra field
    const common = [[2, 20], [2, 0x800], [2, 0], [2, time], [2, day], [4, crc], [4, size], [4, size],
                    [2, encoded.length], [2, 0]];
    parts.push(header([[4, 0x04034B50], ...common]), encoded, bytes);
    directory.push(header([[4, 0x02014B50], [2, 20], ...common, [2, 0], [2, 0], [2, 0], [4, 0], [4, offset]]), encoded);
    offset += 30 + encoded.length + size;
  }
  const directorySize = directory.reduce((n, part) => n + part.length, 0);
  const end = header([[4, 0x06054B50], [2, 0], [2, 0], [2, files.length], [2, files.length], [4, directorySize],
                      [4, offset], [2, 0]]);
  return new Blob([...parts, ...directory, end], {type: 'application/zip'});
}

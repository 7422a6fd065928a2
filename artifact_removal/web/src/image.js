// Image files in and out of the page: decode to RGBA bytes with the browser's own decoders, blend the restoration
// in at a strength, encode PNG or JPEG. Pixels are taken as stored (no colour management), as the Python path
// reads them; EXIF orientation is applied, as the Python path applies it.
import {fileInfo} from './fileinfo.js';

const READABLE = 'JPEG, PNG, WebP, GIF, BMP or AVIF';
const AS_STORED = {imageOrientation: 'from-image', premultiplyAlpha: 'none', colorSpaceConversion: 'none'};

/** A user-facing error about one file. */
export class FileError extends Error {}

function translucent(rgba) {
  for (let i = 3; i < rgba.length; i += 4) if (rgba[i] < 255) return true;
  return false;
}

/** {image: ImageData, gray, alpha, quality} of an image File (`alpha`: some pixel is not opaque; `quality`: a JPEG's,
 * from its tables); a FileError says why a file cannot be used. */
export async function readImage(file) {
  if (file.size === 0) throw new FileError(`${file.name} is empty (0 bytes)`);
  const bytes = new Uint8Array(await file.arrayBuffer());
  let info;
  try {
    info = fileInfo(bytes);
  } catch (error) {
    throw new FileError(`${file.name} is a damaged JPEG (${error.message})`);
  }
  if (info.format === 'tiff') {
    const why = 'which browsers cannot read: convert it to PNG, or use artifact-removal restore';
    throw new FileError(`${file.name} is a TIFF, ${why}`);
  }
  if (!info.format) throw new FileError(`${file.name} is not an image: the page reads ${READABLE} files`);
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, AS_STORED);
  } catch {
    const why = `the file is damaged or this browser cannot read this ${info.format.toUpperCase()}`;
    throw new FileError(`${file.name} could not be decoded: ${why}`);
  }
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const context = canvas.getContext('2d', {willReadFrequently: true});
  context.drawImage(bitmap, 0, 0);
  bitmap.close();
  const image = context.getImageData(0, 0, canvas.width, canvas.height);
  return {image, gray: info.gray, alpha: translucent(image.data), quality: info.quality};
}

/** The RGBA result at `strength`: input + strength * (restored - input), clipped and rounded; alpha passes through
 * untouched. `restored` is planar float RGB. */
export function blend(source, restored, strength) {
  const {width, height, data} = source, plane = width * height, out = new ImageData(width, height);
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) {
      const x = data[4 * p + c] / 255, y = restored[p + c * plane];
      out.data[4 * p + c] = 255 * (x + strength * (y - x));  // clipped to 0..255 and rounded half to even, as numpy
    }
    out.data[4 * p + 3] = data[4 * p + 3];
  }
  return out;
}

/** `image` (ImageData) encoded as a PNG Blob, or a JPEG one at `quality` (1-100). */
export function encode(image, format, quality = 90) {
  const canvas = new OffscreenCanvas(image.width, image.height);
  canvas.getContext('2d').putImageData(image, 0, 0);
  return format === 'jpeg' ? canvas.convertToBlob({type: 'image/jpeg', quality: quality / 100})
                           : canvas.convertToBlob({type: 'image/png'});
}

// Copy the one onnxruntime-web build the page uses (WebGPU with WebAssembly fallback: one .mjs, its loader and its
// .wasm) into the Python package's artifact_removal/web/vendor, or into the folder given as the first argument.
// The page itself lives in the package (artifact_removal/web: index.html, style.css, src/), plain ES modules served
// as they are: no bundler, nothing else to build.
import {cpSync, mkdirSync, rmSync} from 'node:fs';
import {dirname, join} from 'node:path';
import {fileURLToPath} from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2] ?? join(here, '..', 'artifact_removal', 'web', 'vendor');
const ort = join(here, 'node_modules', 'onnxruntime-web');
const VENDOR = [
  'ort.webgpu.min.mjs',
  'ort-wasm-simd-threaded.asyncify.mjs',
  'ort-wasm-simd-threaded.asyncify.wasm',
];  // ort.webgpu.min.mjs opens with the runtime's MIT licence notice

rmSync(out, {recursive: true, force: true});
mkdirSync(out, {recursive: true});
for (const file of VENDOR) cpSync(join(ort, 'dist', file), join(out, file));
console.log(`copied onnxruntime-web into ${out}`);

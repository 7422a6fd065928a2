// The model runs here, off the page's main thread, with onnxruntime-web: WebGPU when the browser has it, else
// WebAssembly (SIMD, and threads when the page is cross-origin isolated). One request at a time, in order: a
// session runs one call at a time. `?threads=N` on the worker's address sets the WebAssembly threads.
import * as ort from '../vendor/ort.webgpu.min.mjs';
import {readWindow, runTiled} from './tiling.js';

ort.env.wasm.wasmPaths = new URL('../vendor/', import.meta.url).href;
const threads = Number(new URL(import.meta.url).searchParams.get('threads'));
if (threads > 0) ort.env.wasm.numThreads = threads;
const sessions = new Map();  // model file -> Promise of {session, backend}

async function createSession(url, backend) {
  const buffer = await fetch(url).then(r => {
    if (!r.ok) throw new Error(`could not load ${url} (HTTP ${r.status})`);
    return r.arrayBuffer();
  });
  const wanted = backend ? [backend] : [...('gpu' in navigator ? ['webgpu'] : []), 'wasm'];
  for (const provider of wanted) {
    try {
      return {session: await ort.InferenceSession.create(buffer, {executionProviders: [provider]}), backend: provider};
    } catch (error) {
      if (provider === wanted.at(-1)) throw error;  // WebGPU without a usable adapter: fall back to WebAssembly
    }
  }
}

function session(url, backend) {
  const key = `${url} ${backend}`;
  if (!sessions.has(key)) sessions.set(key, createSession(url, backend));
  return sessions.get(key);
}

function describe(backend) {
  const runtime = `onnxruntime-web ${ort.env.versions.web}`;
  if (backend === 'webgpu') return `${runtime} · WebGPU`;
  const threads = ort.env.wasm.numThreads, isolation = self.crossOriginIsolated ? '' : ' (not cross-origin isolated)';
  return `${runtime} · WebAssembly, ${threads} thread${threads === 1 ? '' : 's'}${isolation}`;
}

/** The quality the model's estimator reads from a crop of at most 256 px near the centre that starts on the 16-px
 * grid, as RestorationNet.estimate_quality takes it. */
async function estimateQuality(estimator, rgba, width, height) {
  const size = 256, start = n => Math.floor(Math.max(0, Math.floor((n - size) / 2)) / 16) * 16;
  const top = start(height), left = start(width);
  const h = Math.min(size, height - top), w = Math.min(size, width - left);
  const crop = readWindow(rgba, width, height, {top, left, height: h, width: w});
  const input = new ort.Tensor('float32', crop, [1, 3, h, w]);
  return (await estimator.run({image: input})).quality.data[0];
}

async function restore({model, rgba, width, height, gray, quality, tile, context, align, backend}, report) {
  const {session: generator, backend: used} = await session(model.file, backend);
  const qualityAware = generator.inputNames.includes('quality');
  if (qualityAware && quality == null) {
    if (!model.estimator) throw new Error(`${model.name} takes a JPEG quality but the page has no estimator for it`);
    quality = await estimateQuality((await session(model.estimator, backend)).session, rgba, width, height);
  }
  const run = async (data, h, w) => {
    const feeds = {image: new ort.Tensor('float32', data, [1, 3, h, w])};
    if (qualityAware) feeds.quality = new ort.Tensor('float32', new Float32Array([quality]), [1, 1]);
    const result = await generator.run(feeds);
    return result.restored.data;
  };
  const started = performance.now();
  const restored = await runTiled(run, rgba, width, height, {tile, context, align, gray, onWindow: report});
  const seconds = (performance.now() - started) / 1000;
  return {restored, quality: qualityAware ? quality : null, seconds, backend: describe(used)};
}

class Cancelled extends Error {}
let cancelBefore = 0;  // requests with a smaller id were cancelled by the page

async function handle({id, request}) {
  const report = (done, total) => {
    if (id < cancelBefore) throw new Cancelled();
    self.postMessage({id, progress: {done, total}});
  };
  try {
    report(0, 0);
    const result = await restore(request, report);
    self.postMessage({id, result}, [result.restored.buffer]);
  } catch (error) {
    if (!(error instanceof Cancelled)) self.postMessage({id, error: String(error?.message ?? error)});
  }
}

let queue = Promise.resolve();
self.onmessage = ({data}) => {
  if ('cancelBefore' in data) cancelBefore = data.cancelBefore;
  else queue = queue.then(() => handle(data));
};

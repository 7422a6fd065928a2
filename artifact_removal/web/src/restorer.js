// The page's side of the worker that runs the model: one promise per image, with progress.

export class Restorer {
  /** `options`: {threads, backend} from the page's address, for the worker. */
  constructor({threads, backend} = {}) {
    const url = new URL('./worker.js', import.meta.url);
    if (threads) url.searchParams.set('threads', threads);
    this.backend = backend;
    this.worker = new Worker(url, {type: 'module'});
    this.pending = new Map();
    this.nextId = 0;
    this.worker.onmessage = ({data: {id, progress, result, error}}) => {
      const job = this.pending.get(id);
      if (!job) return;  // cancelled
      if (progress) return job.onProgress?.(progress.done, progress.total);
      this.pending.delete(id);
      if (error) job.reject(new Error(error)); else job.resolve(result);
    };
    this.worker.onerror = event => this.failAll(event.message || 'the model worker could not start');
  }

  /** Drop every request made so far (their promises reject): the one running stops after its current window. */
  cancelAll() {
    this.worker.postMessage({cancelBefore: this.nextId});
    this.failAll('cancelled');
  }

  failAll(message) {
    for (const job of this.pending.values()) job.reject(new Error(message));
    this.pending.clear();
  }

  /** Restore RGBA pixels `image` (ImageData) with `model` (an entry of models.json): resolves to {restored (planar
   * float RGB, as the graph returns it), quality, seconds, backend}. `quality`: the JPEG's own, else null
   * (estimated). */
  restore(image, {model, gray, quality, tile, context, align, onProgress}) {
    const id = this.nextId++;
    const rgba = new Uint8ClampedArray(image.data);  // a copy travels to the worker; the page keeps its own
    const request = {model, rgba, width: image.width, height: image.height, gray, quality, tile, context, align,
                     backend: this.backend};
    return new Promise((resolve, reject) => {
      this.pending.set(id, {resolve, reject, onProgress});
      this.worker.postMessage({id, request}, [rgba.buffer]);
    });
  }
}

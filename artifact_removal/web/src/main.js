// The page: images in (pick, drop or paste), restored one after another by the worker, shown before/after, saved
// one by one or as a zip. models.json (written by `artifact-removal serve` or `serve --export`) lists the models
// and the tiling the Python path uses. Address options: ?tile=N (0: whole images), ?threads=N, ?backend=wasm.
import {blend, encode, FileError, readImage} from './image.js';
import {Restorer} from './restorer.js';
import {CompareViewer} from './viewer.js';
import {zipFiles} from './zip.js';

// WebAssembly memory: an image padded to the grid up to 2^21 px runs whole (1920x1088: 1080p frames, as in
// Python); a larger one in tiles of 1024 px, whose windows with their context (about 2 MP) take about 1.7 GB of
// browser memory (measured in Chromium).
const WHOLE_PIXELS = 2 ** 21, TILE = 1024;

const $ = id => document.getElementById(id);
const options = Object.fromEntries(new URLSearchParams(location.search));
const items = [];
let manifest, restorer, viewer, selected = null, generation = 0;

const strength = () => Number($('strength').value);
const model = () => manifest.models.find(m => m.name === $('model').value);
const padded = n => Math.ceil(n / 32) * 32;
const tileFor = (w, h) => {
  if (options.tile !== undefined) return Number(options.tile);
  return padded(w) * padded(h) <= WHOLE_PIXELS ? 0 : TILE;
};

function say(message) {
  const line = document.createElement('li');
  line.textContent = message;
  $('messages').append(line);
}

function outputName(item, format) {
  const stem = item.file.name.replace(/\.[^.]*$/, '');
  return `${stem}_restored.${format === 'jpeg' ? 'jpg' : 'png'}`;
}

function describe(item) {
  const parts = [`${item.image.width}×${item.image.height}`];
  if (item.quality) parts.push(`JPEG q${item.quality}`);
  if (item.state === 'restoring' && item.total > 1) parts.push(`tile ${item.done} of ${item.total}`);
  if (item.state === 'queued' || item.state === 'restoring') parts.push(item.state);
  if (item.state === 'done') {
    if (item.usedQuality && !item.quality) parts.push(`estimated q${Math.round(item.usedQuality)}`);
    parts.push(`${item.seconds.toFixed(1)} s`);
  }
  return item.state === 'error' ? item.error : parts.join(' · ');
}

function update(item) {
  item.element.dataset.state = item.state;
  item.element.querySelector('.detail').textContent = describe(item);
  if (item.state === 'done') {
    Object.assign(item.element.dataset, {seconds: item.seconds, quality: item.usedQuality ?? ''});
  }
  const bar = item.element.querySelector('progress');
  if (item.total > 1) [bar.max, bar.value] = [item.total, item.done];
  else bar.removeAttribute('value');  // indeterminate: one window, no steps to show
}

function listEntry(item) {
  const entry = $('list').appendChild(document.createElement('li'));
  entry.className = 'item';
  entry.innerHTML = `<button class="select"><canvas class="thumb"></canvas><span class="name"></span>
    <span class="detail"></span></button><progress></progress>
    <div class="actions"><button class="download">Download</button><button class="remove">Remove</button></div>`;
  entry.querySelector('.name').textContent = item.file.name;
  const thumb = entry.querySelector('.thumb'), size = 96, scale = size / Math.max(item.image.width, item.image.height);
  [thumb.width, thumb.height] = [Math.ceil(item.image.width * scale), Math.ceil(item.image.height * scale)];
  createImageBitmap(item.image, {resizeWidth: thumb.width, resizeHeight: thumb.height})
    .then(bitmap => thumb.getContext('2d').drawImage(bitmap, 0, 0));
  entry.querySelector('.select').onclick = () => select(item);
  entry.querySelector('.download').onclick = () => download(item);
  entry.querySelector('.remove').onclick = () => remove(item);
  return entry;
}

/** Forget an image (and its memory); a result still on its way is dropped when it comes. */
function remove(item) {
  items.splice(items.indexOf(item), 1);
  item.element.remove();
  item.removed = true;
  if (item === selected) {
    selected = null;
    if (items.length) select(items[0]); else $('viewer').hidden = true;
  }
  $('download-all').disabled = !items.some(i => i.state === 'done');
}

function select(item) {
  selected?.element.classList.remove('selected');
  selected = item;
  item.element.classList.add('selected');
  viewer.show(item.image, item.restored ? blend(item.image, item.restored, strength()) : item.image);
}

async function restore(item) {
  const run = generation;
  Object.assign(item, {state: 'queued', restored: null, done: 0, total: 0});
  update(item);
  try {
    const result = await restorer.restore(item.image, {
      model: model(), gray: item.gray, quality: item.quality, tile: tileFor(item.image.width, item.image.height),
      context: manifest.context, align: manifest.align,
      onProgress: (done, total) => run === generation && update(Object.assign(item, {state: 'restoring', done, total})),
    });
    if (run !== generation || item.removed) return;  // the model changed meanwhile, or the image is gone
    const {restored, quality: usedQuality, seconds} = result;
    Object.assign(item, {state: 'done', restored, usedQuality, seconds});
    $('status').textContent = `${result.backend} · model ${model().name}`;
    if (item === selected) viewer.show(item.image, blend(item.image, item.restored, strength()), true);
  } catch (error) {
    if (run !== generation) return;
    Object.assign(item, {state: 'error', error: `could not restore: ${error.message}`});
  }
  update(item);
  $('download-all').disabled = !items.some(i => i.state === 'done');
}

async function addFiles(files) {
  $('messages').replaceChildren();
  for (const file of files) {
    let read;
    try {
      read = await readImage(file);
    } catch (error) {
      if (!(error instanceof FileError)) throw error;
      say(error.message);
      continue;
    }
    const item = {file, ...read, state: 'queued'};
    item.element = listEntry(item);
    items.push(item);
    if (!selected) select(item);
    restore(item);
  }
}

/** The item's result at the current strength: its file name and a promise of its Blob in the chosen format (PNG
 * for an image with transparency, which JPEG cannot hold). */
function resultBlob(item) {
  const format = item.alpha ? 'png' : $('format').value, image = blend(item.image, item.restored, strength());
  return {name: outputName(item, format), blob: encode(image, format, Number($('jpeg-quality').value))};
}

function save(blob, name) {
  const link = Object.assign(document.createElement('a'), {href: URL.createObjectURL(blob), download: name});
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
}

async function download(item) {
  const {name, blob} = resultBlob(item);
  if (item.alpha && $('format').value === 'jpeg') {
    say(`${item.file.name} has transparency, which JPEG cannot hold: saved as PNG`);
  }
  save(await blob, name);
}

async function downloadAll() {
  const files = [], taken = new Set();
  for (const item of items.filter(i => i.state === 'done')) {
    let {name, blob} = resultBlob(item);
    for (let n = 2; taken.has(name); n++) name = name.replace(/( \(\d+\))?(\.\w+)$/, ` (${n})$2`);
    taken.add(name);
    files.push({name, bytes: new Uint8Array(await (await blob).arrayBuffer())});
  }
  save(zipFiles(files), 'restored.zip');
}

function showStrength() {
  $('strength-value').textContent = strength().toFixed(2);
  if (selected?.restored) viewer.setAfter(blend(selected.image, selected.restored, strength()));
}

function bindInputs() {
  $('files').onchange = event => addFiles([...event.target.files]).finally(() => (event.target.value = ''));
  const drop = $('drop');
  document.addEventListener('dragover', event => { event.preventDefault(); drop.classList.add('dragging'); });
  document.addEventListener('dragleave', event => {
    if (!event.relatedTarget) drop.classList.remove('dragging');  // left the window
  });
  document.addEventListener('drop', event => {
    event.preventDefault();
    drop.classList.remove('dragging');
    addFiles([...event.dataTransfer.files]);
  });
  document.addEventListener('paste', event => addFiles([...event.clipboardData.files]));
  let frame = null;  // one blend per displayed frame while the slider moves
  $('strength').oninput = () => { frame ??= requestAnimationFrame(() => { frame = null; showStrength(); }); };
  $('format').onchange = () => ($('jpeg-quality-label').hidden = $('format').value !== 'jpeg');
  $('model').onchange = () => {
    generation++;
    restorer.cancelAll();
    items.forEach(restore);
  };
  $('download-all').onclick = downloadAll;
}

async function start() {
  try {
    manifest = await fetch('models.json').then(r => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))));
  } catch (error) {
    say(`The model list (models.json) could not be loaded (${error.message}). Open this page through a web server: `
        + 'run `artifact-removal serve`, or host the folder `artifact-removal serve --export DIR` writes.');
    return;
  }
  const url = file => file && new URL(file, new URL('models.json', location.href)).href;  // the worker's base is src/
  manifest.models = manifest.models.map(m => ({...m, file: url(m.file), estimator: url(m.estimator)}));
  for (const {name, description} of manifest.models) {
    const option = new Option(name, name, false, name === manifest.default);
    option.title = description;
    $('model').add(option);
  }
  restorer = new Restorer(options);
  viewer = new CompareViewer($('viewer'));
  bindInputs();
  $('status').textContent = `models: ${manifest.models.map(m => m.name).join(', ')}`;
}

start();

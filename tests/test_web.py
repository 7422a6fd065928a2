"""The in-browser page: its site and server, its JavaScript ports of the Python (tiling, JPEG quality, zip) checked
against the Python they port, and the page itself in headless Chromium against `restore_image`."""
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import urllib.request
import zipfile
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from artifact_removal.image_io import jpeg_quality
from artifact_removal.registry import default_model
from artifact_removal.tiling import run_tiled

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / 'artifact_removal' / 'web'
CHROMIUM = Path('/usr/bin/chromium')
# headless, and nothing that reaches for the network (there is none here)
CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync']
# WebGPU on Chromium's software adapter (SwiftShader), standing in for a GPU
SOFTWARE_WEBGPU = [a for a in CHROMIUM_ARGS if a != '--disable-gpu'] + ['--enable-unsafe-webgpu',
                                                                         '--use-webgpu-adapter=swiftshader']


def require(ok, why):
    "Skip without the tool on a developer's machine; fail in CI, where `.ci/run` installs it."
    if not ok: (pytest.fail if os.environ.get('CI') else pytest.skip)(why)


def node(script: str):
    "Run an ES module `script` with Node, the page's modules importable as `src/NAME.js`; what it prints, as JSON."
    require(shutil.which('node'), 'node is not installed')
    script = script.replace("'src/", f"'{(PAGE / 'src').as_uri()}/")
    done = subprocess.run(['node', '--input-type=module', '-e', script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def close(a, b, tol=2, share=0.999):
    "Whether the uint8 arrays `a` and `b` are within `tol`/255 on at least `share` of their values."
    diff = np.abs(a.astype(int) - b.astype(int))
    return (diff <= tol).mean() >= share, f'{(diff > tol).mean():.2%} differ by more than {tol}, max {diff.max()}'


@pytest.fixture(scope='module')
def qa_weights(tmp_path_factory):
    """A quality-aware generator with random weights whose output depends on the quality it is told and whose
    estimator depends on the pixels, so a wrong quality or crop shows (trained weights start as the identity)."""
    from torch import nn
    from artifact_removal.models import create_generator
    from artifact_removal.weights import save_generator
    torch.manual_seed(0)
    m = create_generator('mobilenetv3_small_100', quality_aware=True)
    nn.init.normal_([c for c in m.body.modules() if isinstance(c, nn.Conv2d)][-1].weight, 0, 0.02)
    nn.init.normal_(m.film.mlp[-1].weight, 0, 0.5)
    nn.init.normal_(m.estimator.blocks[-1].weight, 0, 3); nn.init.normal_(m.estimator.grid[-1].weight, 0, 1)
    return save_generator(m, tmp_path_factory.mktemp('qa') / 'qa.safetensors', 'mobilenetv3_small_100')


@pytest.fixture(scope='module')
def live1(data_dir):
    return Image.open(sorted((data_dir / 'test' / 'live1_color').glob('*.png'))[0]).convert('RGB')


# --- the JavaScript ports, in Node ---

def _python_windows(h, w, tile, context):
    "The windows `run_tiled` reads (top, left, height, width), found from an image whose pixels hold their coordinates."
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    seen = []
    def record(x):
        seen.append((int(x[0, 0, 0, 0]), int(x[0, 1, 0, 0]), x.shape[2], x.shape[3]))
        return x
    run_tiled(record, np.stack([yy, xx, xx], -1), tile=tile, context=context)
    return seen


@pytest.mark.parametrize('h,w,tile,context', [(700, 690, 256, 192), (100, 37, 32, 64), (513, 1025, 128, 100),
                                              (64, 64, 512, 192), (33, 300, 64, 0)])
def test_tile_windows_match_python(h, w, tile, context):
    windows = node(f"import {{tileWindows}} from 'src/tiling.js';"
                   f"console.log(JSON.stringify(tileWindows({h}, {w}, {tile}, {context})))")
    assert [(d['top'], d['left'], d['height'], d['width']) for d in windows] == _python_windows(h, w, tile, context)
    covered = np.zeros((h, w), int)
    for d in windows:
        assert d['top'] <= d['y0'] < d['y1'] <= d['top'] + d['height']
        assert d['left'] <= d['x0'] < d['x1'] <= d['left'] + d['width']
        covered[d['y0']:d['y1'], d['x0']:d['x1']] += 1
    assert (covered == 1).all()  # the cores cover the image once


def test_run_tiled_reads_and_pastes_in_place():
    "With a network that returns its input, tiled and whole runs give back the image itself: windows and cores line up."
    out = node("""import {runTiled} from 'src/tiling.js';
        const [w, h] = [75, 61], rgba = Uint8ClampedArray.from({length: 4 * w * h}, (_, i) => (i * 7919) % 251);
        const identity = async data => data, diffs = [];
        for (const [tile, gray] of [[0, false], [32, false], [64, false], [32, true]]) {
          const out = await runTiled(identity, rgba, w, h, {tile, context: 32, align: 32, gray});
          let worst = 0;
          for (let p = 0; p < w * h; p++) for (let c = 0; c < 3; c++) {
            const want = gray ? (rgba[4 * p] + rgba[4 * p + 1] + rgba[4 * p + 2]) / 3 / 255 : rgba[4 * p + c] / 255;
            worst = Math.max(worst, Math.abs(out[p + c * w * h] - want));
          }
          diffs.push(worst);
        }
        console.log(JSON.stringify(diffs));""")
    assert max(out) < 1e-6


def test_jpeg_quality_and_gray_match_python(tmp_path):
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 256, (40, 56, 3), np.uint8))
    files = []
    def save(im, name, **kw):
        im.save(tmp_path / name, **kw)
        files.append(tmp_path / name)
    for q in (1, 5, 10, 30, 49, 50, 51, 75, 90, 97, 100): save(photo, f'q{q}.jpg', quality=q)
    save(photo, 'q20_444.jpg', quality=20, subsampling=0)
    save(photo, 'q60_progressive.jpg', quality=60, progressive=True, optimize=True)
    save(photo.convert('L'), 'gray_q15.jpg', quality=15)
    save(photo, 'photoshop_tables.jpg', qtables='web_high')
    for mode in ('L', 'LA', 'RGB', 'RGBA', 'P'): save(photo.convert(mode), f'{mode}.png')
    got = node("""import {readFileSync} from 'node:fs'; import {fileInfo} from 'src/fileinfo.js';
        console.log(JSON.stringify(FILES.map(f => fileInfo(readFileSync(f)))))"""
               .replace('FILES', json.dumps([str(f) for f in files])))
    for f, info in zip(files, got):
        im = Image.open(f)
        assert info['format'] == im.format.lower(), f.name
        assert info['quality'] == jpeg_quality(im), f.name
        assert info['gray'] == (im.mode in ('L', 'LA')), f.name


def test_file_sniffing_refuses_non_images():
    got = node("""import {sniffFormat} from 'src/fileinfo.js'; const t = s => new TextEncoder().encode(s);
        console.log(JSON.stringify([sniffFormat(t('hello, not an image')), sniffFormat(new Uint8Array(0)),
          sniffFormat(t('RIFF\\0\\0\\0\\0WEBPVP8 ')), sniffFormat(t('II*\\0')),
          sniffFormat(t('\\0\\0\\0\\x1cftypavif'))]))""")
    assert got == [None, None, 'webp', 'tiff', 'avif']


def test_zip_opens_with_zipfile(tmp_path):
    path = tmp_path / 'results.zip'
    node("""import {writeFileSync} from 'node:fs'; import {zipFiles} from 'src/zip.js';
        const png = Uint8Array.from({length: 100000}, (_, i) => (i * 31) % 256);
        const empty = new Uint8Array(0);
        const blob = zipFiles([{name: 'a_restored.png', bytes: png}, {name: 'ü_restored.jpg', bytes: empty}]);
        writeFileSync(PATH, new Uint8Array(await blob.arrayBuffer())); console.log('[]')"""
         .replace('PATH', json.dumps(str(path))))
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None and z.namelist() == ['a_restored.png', 'ü_restored.jpg']
        assert z.read('a_restored.png') == bytes((i * 31) % 256 for i in range(100000))
        assert z.read('ü_restored.jpg') == b''


def test_shipped_runtime_is_the_locked_one(tmp_path):
    "artifact_removal/web/vendor is what `npm run build` copies from the onnxruntime-web that package-lock.json pins."
    require((ROOT / 'web' / 'node_modules' / 'onnxruntime-web').is_dir(), 'run `npm ci` in web/ first')
    subprocess.run(['node', str(ROOT / 'web' / 'build.mjs'), str(tmp_path / 'vendor')], check=True, capture_output=True)
    built = {p.name: p.read_bytes() for p in (tmp_path / 'vendor').iterdir()}
    shipped = {p.name: p.read_bytes() for p in (PAGE / 'vendor').iterdir()}
    assert built.keys() == shipped.keys() and all(built[k] == shipped[k] for k in built)
    assert sum(map(len, shipped.values())) < 30e6  # one runtime build, not all of onnxruntime-web's


# --- the Python side: exports, site, server ---

def test_export_estimator_onnx(tmp_path, qa_weights):
    import onnxruntime as ort
    from artifact_removal.export import export_estimator_onnx
    from artifact_removal.restore import Restorer
    path = export_estimator_onnx(qa_weights, tmp_path / 'q.onnx')
    a = np.random.default_rng(1).integers(0, 256, (300, 280, 3), np.uint8)
    y0, x0 = (300 - 256) // 2 // 16 * 16, (280 - 256) // 2 // 16 * 16  # the crop estimate_quality takes
    crop = (a[y0:y0 + 256, x0:x0 + 256].transpose(2, 0, 1)[None] / 255).astype(np.float32)
    sess = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    assert abs(sess.run(None, {'image': crop})[0][0] - Restorer(qa_weights, device='cpu').estimate_quality(a)) < 1e-3
    from artifact_removal.models import create_generator
    from artifact_removal.weights import save_generator
    blind = save_generator(create_generator('mobilenetv3_small_100', quality_aware=False), tmp_path / 'blind.safetensors',
                           'mobilenetv3_small_100')
    with pytest.raises(ValueError, match='not quality-aware'): export_estimator_onnx(blind, tmp_path / 'x.onnx')


def test_export_site(tmp_path, qa_weights):
    from artifact_removal.cli import main
    from artifact_removal.weights import load_model
    assert main(['serve', '--export', str(tmp_path / 'site'), '--model', 'default', '--model', str(qa_weights)]) == 0
    manifest = json.loads((tmp_path / 'site' / 'models.json').read_text())
    assert manifest['default'] == default_model() and manifest['context'] == 192 and manifest['align'] == 32
    models = {m['name']: m for m in manifest['models']}
    assert set(models) == {default_model(), 'qa'}
    assert (models[default_model()]['estimator'] is None) == (not load_model('default').quality_aware)
    for m in manifest['models']:
        for f in filter(None, (m['file'], m['estimator'])): assert (tmp_path / 'site' / f).stat().st_size > 1000
    import onnx
    inputs = lambda f: [i.name for i in onnx.load(tmp_path / 'site' / f).graph.input]
    assert inputs(models['qa']['file']) == ['image', 'quality'] and inputs(models['qa']['estimator']) == ['image']
    for f in ('index.html', 'src/main.js', 'vendor/ort.webgpu.min.mjs', 'vendor/ort-wasm-simd-threaded.asyncify.wasm'):
        assert (tmp_path / 'site' / f).is_file()


def _get(url):
    try:
        with urllib.request.urlopen(url) as r: return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e: return e.code, e.headers, b''


def test_serve_command(tmp_path):
    "`serve` prints its address, serves the page isolated (for threads) with the right types, stops on Ctrl-C."
    command = [sys.executable, '-m', 'artifact_removal.cli', 'serve', '--port', '0', '--model', 'default']
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = ''
        while 'page at' not in line:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
        url = line.split('page at ')[1].split()[0]
        assert url.startswith('http://127.0.0.1:')
        status, headers, body = _get(url)
        assert status == 200 and b'src/main.js' in body
        assert headers['Cross-Origin-Opener-Policy'] == 'same-origin'
        assert headers['Cross-Origin-Embedder-Policy'] == 'require-corp'
        manifest = json.loads(_get(url + 'models.json')[2])
        status, headers, body = _get(url + manifest['models'][0]['file'])
        assert status == 200 and len(body) > 1e6
        assert _get(url + 'vendor/ort-wasm-simd-threaded.asyncify.wasm')[1]['Content-Type'] == 'application/wasm'
        assert _get(url + 'src/main.js')[1]['Content-Type'] == 'text/javascript'
        for missing in ('src/', 'models/nope.onnx', 'models/../../serve.py', 'nope.html'):
            assert _get(url + missing)[0] == 404, missing
        port = int(url.rstrip('/').rsplit(':', 1)[1])
        from artifact_removal.cli import main
        assert main(['serve', '--port', str(port), '--model', 'default']) == 2  # in use: a message, no traceback
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0


# --- the page in headless Chromium ---

@pytest.fixture(scope='module')
def server(qa_weights):
    from artifact_removal.serve import make_server
    srv = make_server(0, models=['default', str(qa_weights)])
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{srv.server_port}/'
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope='module')
def playwright():
    require(CHROMIUM.exists(), f'{CHROMIUM} not found: apt-get install chromium')
    try: from playwright.sync_api import sync_playwright
    except ImportError: require(False, "playwright is not installed: pip install -e '.[test]'")
    with sync_playwright() as p: yield p


@pytest.fixture(scope='module')
def browser(playwright):
    b = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield b
    b.close()


@contextmanager
def opened(browser, url):
    "The page at `url`, checked afterwards for script errors and for requests other than reading files from here."
    context = browser.new_context(accept_downloads=True, viewport={'width': 1280, 'height': 860})
    page = context.new_page()
    errors, requests = [], []
    page.on('pageerror', lambda e: errors.append(e))
    page.on('request', lambda r: requests.append((r.method, r.url)))
    page.goto(url)
    yield page
    context.close()
    assert not errors, errors
    local = ('http://127.0.0.1:', 'blob:http://127.0.0.1:', 'data:')
    assert all(method == 'GET' and url.startswith(local) for method, url in requests), requests


@pytest.fixture
def page(browser, server):
    with opened(browser, server) as page: yield page


def restore_in_page(page, files, model=None, query=''):
    "Restore `files` in the page (with `model`, address options `query`); the list entries once all are done."
    if query: page.goto(page.url.split('?')[0] + query)
    if model: page.select_option('#model', model)
    page.set_input_files('#files', [str(f) for f in files])
    page.wait_for_function(f"document.querySelectorAll('.item[data-state=done]').length === {len(files)}"
                           " || document.querySelector('.item[data-state=error]')", timeout=600_000)
    assert not page.query_selector('.item[data-state=error]'), page.inner_text('#list')
    return [page.locator('.item').nth(i) for i in range(len(files))]


def download(page, button, folder) -> Path:
    "Click `button` and save what it downloads into `folder` under the name the page gave it."
    with page.expect_download() as d: button.click()
    path = Path(folder) / d.value.suggested_filename
    d.value.save_as(path)
    return path


def set_strength(page, value):
    page.eval_on_selector('#strength', "(e, v) => { e.value = v; e.dispatchEvent(new Event('input')); }", str(value))


@pytest.mark.slow
def test_page_matches_python(page, live1, tmp_path):
    from artifact_removal import restore_image
    crop = live1.crop((64, 64, 64 + 256, 64 + 192))
    crop.save(tmp_path / 'crop_q10.jpg', quality=10)
    crop.convert('L').save(tmp_path / 'gray_q10.jpg', quality=10)
    items = restore_in_page(page, [tmp_path / 'crop_q10.jpg', tmp_path / 'gray_q10.jpg'])
    assert 'JPEG q10' in items[0].locator('.detail').inner_text() and 'WebAssembly' in page.inner_text('#status')
    source = np.asarray(Image.open(tmp_path / 'crop_q10.jpg'))
    for strength in (1.0, 0.5):
        set_strength(page, strength)
        got = np.asarray(Image.open(download(page, items[0].locator('.download'), tmp_path)).convert('RGB'))
        want = np.asarray(restore_image(tmp_path / 'crop_q10.jpg', strength=strength))
        assert np.abs(got.astype(int) - source).mean() > 0.5 * strength  # it did restore
        ok, why = close(got, want)
        assert ok, f'strength {strength}: {why}'
    gray = np.asarray(Image.open(download(page, items[1].locator('.download'), tmp_path)).convert('RGB'))
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 0] == gray[..., 2]).all()
    ok, why = close(gray[..., 0], np.asarray(restore_image(tmp_path / 'gray_q10.jpg', strength=0.5)))
    assert ok, f'gray: {why}'

    page.select_option('#format', 'jpeg')
    page.fill('#jpeg-quality', '80')
    jpeg = download(page, items[0].locator('.download'), tmp_path)
    assert jpeg.name == 'crop_q10_restored.jpg' and jpeg_quality(Image.open(jpeg)) == 80
    with zipfile.ZipFile(download(page, page.locator('#download-all'), tmp_path)) as z:
        assert z.namelist() == ['crop_q10_restored.jpg', 'gray_q10_restored.jpg']
        assert z.read('crop_q10_restored.jpg') == jpeg.read_bytes()
    items[1].locator('.remove').click()
    assert page.locator('.item').count() == 1


@pytest.mark.slow
def test_page_tiles_without_seams(page, live1, tmp_path):
    "A large image run in tiles matches the same image run whole (1/255, as in Python) and the Python path."
    from artifact_removal import restore_image
    big = Image.fromarray(np.concatenate([np.asarray(live1), np.asarray(live1)[::-1]])[:700, :690])
    big.save(tmp_path / 'big.jpg', quality=10)
    item = restore_in_page(page, [tmp_path / 'big.jpg'])[0]
    whole = np.asarray(Image.open(download(page, item.locator('.download'), tmp_path / 'whole')))
    item = restore_in_page(page, [tmp_path / 'big.jpg'], query='?tile=256')[0]
    tiled = np.asarray(Image.open(download(page, item.locator('.download'), tmp_path / 'tiled')))
    diff = np.abs(tiled.astype(int) - whole)  # float32 rounding: a level here and there, 2 at most; a seam is a line
    assert diff.max() <= 2 and (diff <= 1).mean() > 0.999, 'tile seams'
    ok, why = close(tiled[..., :3], np.asarray(restore_image(tmp_path / 'big.jpg', tile=0)))
    assert ok, why


@pytest.mark.slow
def test_page_quality_aware_model(page, live1, qa_weights, tmp_path):
    "A JPEG tells the model its quality from its tables; other images get the estimator's reading, as in Python."
    from artifact_removal.restore import Restorer
    crop = live1.crop((0, 0, 320, 288))
    crop.save(tmp_path / 'q10.jpg', quality=10)
    crop.save(tmp_path / 'tmp.jpg', quality=30)
    Image.open(tmp_path / 'tmp.jpg').save(tmp_path / 'was_q30.png')
    items = restore_in_page(page, [tmp_path / 'q10.jpg', tmp_path / 'was_q30.png'], model='qa')
    r = Restorer(qa_weights, device='cpu')
    assert float(items[0].get_attribute('data-quality')) == 10
    assert abs(float(items[1].get_attribute('data-quality')) - r.quality_of(tmp_path / 'was_q30.png')) < 1e-3
    for item, name in zip(items, ('q10.jpg', 'was_q30.png')):
        got = np.asarray(Image.open(download(page, item.locator('.download'), tmp_path)).convert('RGB'))
        ok, why = close(got, np.asarray(r.restore_file(tmp_path / name)))
        assert ok, f'{name}: {why}'


@pytest.mark.slow
def test_page_on_webgpu(playwright, server, live1, tmp_path):
    "The WebGPU backend gives the Python path's result too (on a software adapter: slow, so a small crop)."
    from artifact_removal import restore_image
    live1.crop((64, 64, 64 + 128, 64 + 96)).save(tmp_path / 'small.jpg', quality=10)
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=SOFTWARE_WEBGPU)
    try:
        with opened(browser, server + '?backend=webgpu') as page:
            item = restore_in_page(page, [tmp_path / 'small.jpg'])[0]
            assert 'WebGPU' in page.inner_text('#status')
            got = np.asarray(Image.open(download(page, item.locator('.download'), tmp_path)).convert('RGB'))
    finally: browser.close()
    ok, why = close(got, np.asarray(restore_image(tmp_path / 'small.jpg')))
    assert ok, why


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args): pass


@pytest.mark.slow
def test_exported_site_works_on_a_plain_static_server(page, live1, tmp_path):
    "The folder `serve --export` writes runs as it is on a server that knows nothing of it (no isolation headers)."
    from artifact_removal import restore_image
    from artifact_removal.serve import export_site
    site = export_site(tmp_path / 'site', ['default'])
    srv = ThreadingHTTPServer(('127.0.0.1', 0), partial(_QuietHandler, directory=str(site)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        page.goto(f'http://127.0.0.1:{srv.server_port}/')
        live1.crop((0, 0, 160, 128)).save(tmp_path / 'small.jpg', quality=10)
        item = restore_in_page(page, [tmp_path / 'small.jpg'])[0]
        assert 'not cross-origin isolated' in page.inner_text('#status')
        got = np.asarray(Image.open(download(page, item.locator('.download'), tmp_path)).convert('RGB'))
        ok, why = close(got, np.asarray(restore_image(tmp_path / 'small.jpg')))
        assert ok, why
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.mark.slow
def test_page_says_why_a_file_is_refused(page, tmp_path):
    (tmp_path / 'notes.txt').write_text('not a picture')
    (tmp_path / 'empty.png').write_bytes(b'')
    (tmp_path / 'broken.jpg').write_bytes(b'\xff\xd8\xff\xe0' + bytes(200))
    (tmp_path / 'scan.tif').write_bytes(b'II*\x00' + bytes(100))
    page.set_input_files('#files', [str(tmp_path / f) for f in ('notes.txt', 'empty.png', 'broken.jpg', 'scan.tif')])
    page.wait_for_function("document.querySelectorAll('#messages li').length === 4", timeout=120_000)
    messages = page.inner_text('#messages')
    assert 'notes.txt is not an image: the page reads JPEG, PNG' in messages
    assert 'empty.png is empty (0 bytes)' in messages
    assert 'broken.jpg' in messages and ('could not be decoded' in messages or 'damaged JPEG' in messages)
    assert 'scan.tif is a TIFF' in messages
    assert not page.query_selector_all('.item')

"""The web page's speed in headless Chromium beside the Python path's, same image, same machine, same run.

A LIVE1 image compressed at quality 10, and a 1080p frame made of LIVE1 images, each restored whole by the page
(onnxruntime-web, WebAssembly: its default threads and 2) and by `Restorer` (onnxruntime, CPU). Page seconds
are the model's time the page reports (decoding and display excluded); Python seconds are `restore_file`'s,
decoding included. Median of `--repeat` runs after a warm-up. Prints a Markdown table; with `--screenshot`,
also saves a picture of the page with a result.

    python benchmarks/web_speed.py [--repeat 3] [--screenshot docs/images/web_page.png]
"""
import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image
from playwright.sync_api import sync_playwright

from artifact_removal.restore import Restorer
from artifact_removal.serve import make_server

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tests'))
from test_web import CHROMIUM, CHROMIUM_ARGS, restore_in_page  # noqa: E402  the tests' way to drive the page

LIVE1 = ROOT.parent / 'shared' / 'data' / 'test' / 'live1_color'


def test_images(folder: Path) -> list:
    "bikes.png at q10 (768x512), and a 1920x1080 mosaic of eight LIVE1 images (resized to 480x540) at q10."
    images = sorted(LIVE1.glob('*.png'))
    Image.open(images[0]).convert('RGB').save(folder / 'live1_q10.jpg', quality=10)
    tile = lambda f: np.asarray(Image.open(f).convert('RGB').resize((480, 540)))
    mosaic = np.concatenate([np.concatenate([tile(f) for f in row], 1) for row in (images[:4], images[4:8])])
    Image.fromarray(mosaic).save(folder / 'frame1080_q10.jpg', quality=10)
    return [folder / 'live1_q10.jpg', folder / 'frame1080_q10.jpg']


def page_seconds(page, url, image, repeat, query=''):
    "Median model seconds the page reports over `repeat` restorations of `image`, after one warm-up."
    page.goto(url + query)
    items = restore_in_page(page, [image] * (repeat + 1))
    return statistics.median(float(i.get_attribute('data-seconds')) for i in items[1:]), page.inner_text('#status')


def python_seconds(image, repeat):
    r = Restorer(device='cpu', tile=0)
    r.restore_file(image)
    times = []
    for _ in range(repeat):
        t = time.perf_counter(); r.restore_file(image); times.append(time.perf_counter() - t)
    return statistics.median(times), f'Restorer backend={r.backend}, {r.name}'


def screenshot(page, url, image, path):
    "The page with a restored photo, split in the middle and zoomed 2x on its centre."
    page.set_viewport_size({'width': 1280, 'height': 800})
    page.goto(url)
    restore_in_page(page, [image])
    page.click('.zoom [data-zoom=in]')
    page.screenshot(path=path, full_page=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--repeat', type=int, default=3)
    p.add_argument('--screenshot', help='save a picture of the page with a result here')
    args = p.parse_args()
    load = os.getloadavg()[0]
    srv = make_server(0, models=['default'])
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f'http://127.0.0.1:{srv.server_port}/'
    rows = []
    with tempfile.TemporaryDirectory() as d, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page()
        images = test_images(Path(d))
        for image in images:
            mp = Image.open(image).width * Image.open(image).height / 1e6
            for query in ('', '?threads=2'):
                s, how = page_seconds(page, url, image, args.repeat, query)
                rows.append((image.name, mp, f'page: {how.split(" · model")[0]}', s))
            s, how = python_seconds(image, args.repeat)
            rows.append((image.name, mp, f'Python: {how}', s))
        if args.screenshot: screenshot(page, url, images[0], args.screenshot)
        version = browser.version
        browser.close()
    print(f'Chromium {version}; load average before the run: {load:.2f} on {os.cpu_count()} cores\n')
    print('| image | MP | path | s | MP/s | speed / Python\'s |\n|---|---:|---|---:|---:|---:|')
    python = {name: s for name, _, how, s in rows if how.startswith('Python')}
    for name, mp, how, s in rows:
        print(f'| {name} | {mp:.2f} | {how} | {s:.2f} | {mp / s:.2f} | {python[name] / s:.2f} |')


if __name__ == '__main__':
    main()

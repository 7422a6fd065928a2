"""The in-browser page: restore images on the user's own machine, with nothing but files served.

The page (HTML and ES modules in artifact_removal/web, and onnxruntime-web's WebAssembly, which `npm run build` in
`web/` copies into it) ships inside the package. The models it runs are ONNX exports of the registered weights, made once per weights file (named by
its sha256, so new weights get a new export) into the cache folder, and listed in `models.json` with the tiling
the Python path uses, so the page's results match `restore_image`. `serve` hands these files out on 127.0.0.1;
`export_site` writes the same site into a folder that any static host can serve.
"""
import errno
import inspect
import io
import json
import shutil
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

__all__ = ['site_dir', 'export_models', 'export_site', 'make_server', 'serve']


def site_dir() -> Path:
    "The page shipped in the package, with its runtime."
    d = Path(__file__).parent / 'web'
    if not (d / 'vendor').is_dir():
        raise FileNotFoundError(f'{d}: the page has no onnxruntime-web; run `npm ci && npm run build` in the web/ folder')
    return d


def _available_models() -> list:
    """Registered models whose weights are here (bundled or cached): the page offers what works offline; not the
    super-resolution ones (the page restores at the input's size)."""
    from .models import GENERATOR_CONFIGS, check_arch
    from .registry import get_model_info, list_models, model_path
    names = []
    for name in list_models():
        if GENERATOR_CONFIGS[check_arch(get_model_info(name).arch)].get('scale', 1) != 1: continue
        try: model_path(name, download=False)
        except FileNotFoundError: continue
        names.append(name)
    if not names:
        raise FileNotFoundError('no model weights found: download one with `artifact-removal models download NAME`')
    return names


_GRAPH = 'clipped'  # what export_onnx writes (its output clipped to [0, 1]); a change needs a new name here


def _exports() -> Path:
    "Where the ONNX exports of weights are kept, named by the weights' sha256."
    from .registry import cache_dir
    return cache_dir() / 'web' / 'models'


def _export_model(model) -> dict:
    "The page's entry for `model` (a registry name or weights file), exporting its graphs unless they are there."
    from .export import export_estimator_onnx, export_onnx
    from .registry import default_model, get_model_info, list_models, sha256sum
    from .weights import load_model, weights_path
    path, m = weights_path(model), load_model(model)
    if getattr(m, 'scale', 1) != 1:
        raise ValueError(f'{model}: an x{m.scale} model; the page restores at the same size only')
    key = sha256sum(path)[:16]  # new weights under an old name get a new export
    generator, estimator = _exports() / f'{key}.{_GRAPH}.onnx', _exports() / f'{key}.quality.onnx'
    if not generator.is_file():
        print(f'exporting {model} for the page (once per weights file): {generator}', flush=True)
        export_onnx(m, generator)
    quality_aware = getattr(m, 'quality_aware', False)
    if quality_aware and not estimator.is_file(): export_estimator_onnx(m, estimator)
    name = default_model() if model == 'default' else str(model)
    if name in list_models(): label, description = name, get_model_info(name).description
    else: label, description = path.stem, str(path)
    return {'name': label, 'description': description, 'file': f'models/{generator.name}',
            'estimator': f'models/{estimator.name}' if quality_aware else None}


def export_models(models=None) -> dict:
    """Export `models` (registry names or .safetensors files; default: every registered model whose weights are
    here) into the cache folder, each once per weights file, and return the manifest the page reads as models.json:
    the models, the one selected first, and the tiling of the Python path (context and grid)."""
    from .registry import default_model
    from .restore import Restorer
    from .tiling import run_tiled
    _exports().mkdir(parents=True, exist_ok=True)
    entries = [_export_model(m) for m in (models or _available_models())]
    names = [e['name'] for e in entries]
    default = default_model() if default_model() in names else names[0]
    context = inspect.signature(Restorer).parameters['context'].default
    align = inspect.signature(run_tiled).parameters['align'].default
    return {'default': default, 'context': context, 'align': align, 'models': entries}


def export_site(out, models=None) -> Path:
    """Write the whole page with `models` into the folder `out`, for any static host (serve it with the headers
    `Cross-Origin-Opener-Policy: same-origin` and `Cross-Origin-Embedder-Policy: require-corp` for threads)."""
    out, manifest = Path(out), export_models(models)
    shutil.copytree(site_dir(), out, dirs_exist_ok=True)
    (out / 'models').mkdir(exist_ok=True)
    for m in manifest['models']:
        for file in filter(None, (m['file'], m['estimator'])): shutil.copyfile(_exports() / Path(file).name, out / file)
    (out / 'models.json').write_text(json.dumps(manifest, indent=1) + '\n')
    return out


class _SiteHandler(SimpleHTTPRequestHandler):
    """Static files from the package's page, models from the export folder, models.json from memory. The two
    isolation headers let the page use WebAssembly threads; no-cache makes a browser check for newer exports."""
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, '.js': 'text/javascript', '.mjs': 'text/javascript',
                      '.wasm': 'application/wasm', '.onnx': 'application/octet-stream', '.json': 'application/json'}

    def __init__(self, *args, models_dir, manifest, **kwargs):
        self.models_dir, self.manifest = models_dir, manifest
        super().__init__(*args, **kwargs)

    def translate_path(self, path):
        parts = unquote(urlsplit(path).path).split('/')
        if len(parts) == 3 and parts[1] == 'models' and parts[2] not in ('', '.', '..'):
            return str(self.models_dir / parts[2])
        return super().translate_path(path)

    def list_directory(self, path):
        self.send_error(404)

    def send_head(self):
        if urlsplit(self.path).path != '/models.json': return super().send_head()
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(self.manifest)))
        self.end_headers()
        return io.BytesIO(self.manifest)

    def end_headers(self):
        self.send_header('Cross-Origin-Opener-Policy', 'same-origin')
        self.send_header('Cross-Origin-Embedder-Policy', 'require-corp')
        self.send_header('Cache-Control', 'no-cache')
        super().end_headers()

    def log_request(self, code='-', size='-'): pass  # quiet; what goes wrong is still logged by send_error


def make_server(port=8000, host='127.0.0.1', models=None) -> ThreadingHTTPServer:
    """A server for the page and `models` (see `export_models`), exported into the cache folder; not started.
    port=0 takes any free port (`server.server_port` says which)."""
    manifest = json.dumps(export_models(models)).encode()
    handler = partial(_SiteHandler, directory=str(site_dir()), models_dir=_exports(), manifest=manifest)
    try: return ThreadingHTTPServer((host, port), handler)
    except OSError as e:
        if e.errno != errno.EADDRINUSE: raise
        raise RuntimeError(f'port {port} on {host} is in use: choose another with --port (0: any free port)') from None


def serve(port=8000, host='127.0.0.1', models=None, open_browser=False):
    "Serve the page until Ctrl-C, printing its address (and opening it in a browser with `open_browser`)."
    server = make_server(port, host, models)
    url = f'http://{host}:{server.server_port}/'
    print(f'artifact-removal page at {url} (the model runs in the browser; Ctrl-C stops the server)', flush=True)
    if open_browser:
        import webbrowser
        webbrowser.open(url)
    try: server.serve_forever()
    except KeyboardInterrupt: pass
    finally: server.server_close()

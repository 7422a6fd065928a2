"""Named pretrained generators: where their weights are, and getting them when they are not here.

The manifest `models/registry.json` (shipped inside the package) lists each model's file, sha256, architecture,
recipe and measured metrics. `model_path(name)` looks in order at the bundled `models/` folder (the default
model ships with the package and works offline), the cache folder (`$ARTIFACT_REMOVAL_HOME`, else
`~/.cache/artifact_removal`), then downloads from the entry's URL, checking the size and the sha256 before an
atomic rename, so a cut connection, a stalled server or a wrong file never leaves anything in the cache. An entry
without a sha256 is never downloaded (nothing could tell a truncated or replaced file from the real one).
"""
import hashlib
import http.client
import json
import os
import re
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from .files import atomic_path

__all__ = ['ModelInfo', 'list_models', 'get_model_info', 'register_model', 'model_path', 'download_model',
           'cache_dir', 'bundled_dir', 'sha256sum', 'default_model', 'ModelDownloadError', 'DOWNLOAD_TIMEOUT']

DOWNLOAD_TIMEOUT = 30  # seconds a download waits for the server (to connect, or for the next bytes) before giving up


class ModelDownloadError(RuntimeError):
    "Weights that could not be fetched (no network, a stalled or cut connection, a checksum mismatch, no checksum)."


@dataclass
class ModelInfo:
    name: str
    file: str                     # file name in the bundled folder, the cache and at the URL
    sha256: str
    arch: str                     # a GENERATOR_CONFIGS entry
    url: str = ''                 # where to download it when it is neither bundled nor cached
    recipe: str = ''              # how it was trained, in one line
    description: str = ''
    metrics: dict = field(default_factory=dict)


def bundled_dir() -> Path:
    "The `models/` folder shipped with the package (a source checkout's top-level `models/`)."
    installed = Path(__file__).parent / 'bundled'
    return installed if installed.is_dir() else Path(__file__).resolve().parents[1] / 'models'


def cache_dir() -> Path:
    return Path(os.environ.get('ARTIFACT_REMOVAL_HOME') or Path.home() / '.cache' / 'artifact_removal')


def _manifest_path() -> Path: return bundled_dir() / 'registry.json'


def _read_manifest(path) -> dict:
    return json.loads(Path(path).read_text()) if Path(path).exists() else {'default': '', 'models': {}}


_MANIFEST = _read_manifest(_manifest_path())
_REGISTRY = {k: ModelInfo(name=k, **v) for k, v in _MANIFEST['models'].items()}


def default_model() -> str:
    "The name of the model `restore_image` uses when none is named."
    if not _MANIFEST['default']: raise ValueError(f'no default model in {_manifest_path()}')
    return _MANIFEST['default']


def list_models() -> list: return sorted(_REGISTRY)


def register_model(info: ModelInfo):
    "Add (or replace) a named model for this session, e.g. your own weights served from your own URL."
    _REGISTRY[info.name] = info
    return info


def get_model_info(name) -> ModelInfo:
    if name not in _REGISTRY:
        raise ValueError(f'unknown model {name!r}; known models: {", ".join(list_models()) or "none"} '
                         '(or pass the path of a .safetensors weights file)')
    return _REGISTRY[name]


def sha256sum(path, chunk=1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''): h.update(block)
    return h.hexdigest()


def model_path(name, download=True) -> Path:
    """The weights file of model `name`: bundled, else cached, else downloaded (when `download`). A cached file
    that does not match the registry's sha256 (copied in by hand, or left by an older version) is fetched again."""
    info = get_model_info(name)
    if (bundled_dir() / info.file).is_file(): return bundled_dir() / info.file
    cached = cache_dir() / info.file
    if cached.is_file():
        if not _has_sha256(info) or sha256sum(cached) == info.sha256.lower(): return cached
        if not download: raise FileNotFoundError(f'{cached} does not match the sha256 of model {name!r}')
        warnings.warn(f'{cached} does not match the sha256 of model {name!r}: downloading it again')
        return download_model(name, force=True)
    if not download: raise FileNotFoundError(f'model {name!r} ({info.file}) is not in {bundled_dir()} or {cache_dir()}')
    return download_model(name)


def _has_sha256(info) -> bool: return re.fullmatch('[0-9a-f]{64}', (info.sha256 or '').lower()) is not None


def download_model(name, force=False, progress=True, timeout=DOWNLOAD_TIMEOUT) -> Path:
    """Fetch model `name` into the cache folder, checking its size and sha256; nothing is left behind on failure.
    `timeout`: seconds to wait for the server to connect or send more bytes (a stalled server raises, it does not
    hang). An entry without a sha256 is refused: the download could not be checked."""
    info = get_model_info(name)
    dst = cache_dir() / info.file
    if dst.is_file() and not force: return dst
    if not info.url: raise ModelDownloadError(f'model {name!r} has no download URL; put {info.file} in {cache_dir()}')
    if not _has_sha256(info):
        raise ModelDownloadError(f'model {name!r} has no sha256 (64 hex digits) to check {info.url} against: not '
                                 f'downloading it unchecked. Register it with its sha256, or put {info.file} in '
                                 f'{cache_dir()} yourself')
    fail = lambda why: ModelDownloadError(f'could not download model {name!r} from {info.url}: {why}; nothing was '
                                          f'saved. Without network, copy {info.file} into {cache_dir()}')
    try:
        with atomic_path(dst) as tmp: _fetch(info.url, tmp, info.sha256.lower(), timeout, progress)
    except _Mismatch as e:
        raise ModelDownloadError(f'{info.url}: downloaded file does not match the sha256 of model {name!r} ({e}); '
                                 'nothing was saved') from None
    except _CutShort as e: raise fail(str(e)) from None
    except TimeoutError: raise fail(f'no answer for {timeout:g} s (the server stalled)') from None
    except urllib.error.URLError as e:
        why = f'no answer for {timeout:g} s (the server stalled)' if isinstance(e.reason, TimeoutError) else e.reason
        raise fail(f'HTTP {e.code} {e.reason}' if isinstance(e, urllib.error.HTTPError) else why) from None
    except (OSError, http.client.HTTPException, ValueError) as e: raise fail(f'{type(e).__name__}: {e}') from None
    return dst


class _Mismatch(Exception): pass
class _CutShort(Exception): pass


def _fetch(url, path, sha256, timeout, progress):
    "Stream `url` into `path`, raising unless it has the announced length and the given sha256."
    h, n = hashlib.sha256(), 0
    with urllib.request.urlopen(url, timeout=timeout) as r, open(path, 'wb') as f:
        total = int(r.headers.get('Content-Length') or 0) or None
        bar = None
        if progress and total:
            from fastprogress.fastprogress import progress_bar
            bar = progress_bar(range(total))
            bar.update(0)
        while block := r.read(1 << 16):
            f.write(block)
            h.update(block)
            n += len(block)
            if bar is not None: bar.update(min(n, total))
    if total is not None and n != total: raise _CutShort(f'the connection ended after {n} of {total} bytes')
    if h.hexdigest() != sha256: raise _Mismatch(f'expected {sha256}, got {h.hexdigest()} for {n} bytes')

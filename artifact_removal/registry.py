"""Named pretrained generators: where their weights are, and getting them when they are not here.

The manifest `models/registry.json` (shipped inside the package) lists each model's file, sha256, architecture,
recipe and measured metrics. `model_path(name)` looks in order at the bundled `models/` folder (the default
model ships with the package and works offline), the cache folder (`$ARTIFACT_REMOVAL_HOME`, else
`~/.cache/artifact_removal`), then downloads from the entry's URL, checking the sha256 before an atomic
rename, so a cut connection or a wrong file never leaves anything in the cache.
"""
import hashlib
import http.client
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from torch.hub import download_url_to_file

__all__ = ['ModelInfo', 'list_models', 'get_model_info', 'register_model', 'model_path', 'download_model',
           'cache_dir', 'bundled_dir', 'sha256sum', 'publish_model', 'default_model', 'ModelDownloadError']



class ModelDownloadError(RuntimeError):
    "Weights that could not be fetched (no network, a cut connection, a checksum mismatch)."


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
    "The weights file of model `name`: bundled, else cached, else downloaded (when `download`)."
    info = get_model_info(name)
    for folder in (bundled_dir(), cache_dir()):
        if (folder / info.file).is_file(): return folder / info.file
    if not download: raise FileNotFoundError(f'model {name!r} ({info.file}) is not in {bundled_dir()} or {cache_dir()}')
    return download_model(name)


def download_model(name, force=False, progress=True) -> Path:
    "Fetch model `name` into the cache folder, checking its sha256; nothing is left behind on failure."
    info = get_model_info(name)
    dst = cache_dir() / info.file
    if dst.is_file() and not force: return dst
    if not info.url: raise ModelDownloadError(f'model {name!r} has no download URL; put {info.file} in {cache_dir()}')
    dst.parent.mkdir(parents=True, exist_ok=True)
    try: download_url_to_file(info.url, str(dst), hash_prefix=info.sha256, progress=progress)
    except RuntimeError as e:  # torch.hub removes its temporary file before raising
        raise ModelDownloadError(f'{info.url}: downloaded file does not match the sha256 of model {name!r} '
                                 f'({e}); nothing was saved') from None
    except (OSError, http.client.HTTPException) as e:
        raise ModelDownloadError(f'could not download model {name!r} from {info.url} ({e}); nothing was '
                                 f'saved. Without network, copy {info.file} into {cache_dir()}') from None
    return dst


def publish_model(weights, name, url='', recipe='', description='', metrics=None, default=False,
                  folder=None) -> ModelInfo:
    """Record the weights file `weights` (already in `folder`, default the bundled folder) as model `name` in
    the manifest, with its sha256 and the architecture stored in its metadata; `default` makes it the default."""
    from .weights import read_metadata
    weights, folder = Path(weights), Path(folder or bundled_dir())
    info = ModelInfo(name, weights.name, sha256sum(weights), read_metadata(weights)['arch'], url, recipe,
                     description, metrics or {})
    manifest = _read_manifest(folder / 'registry.json')
    manifest['models'][name] = {k: v for k, v in asdict(info).items() if k != 'name'}
    if default or not manifest['default']: manifest['default'] = name
    (folder / 'registry.json').write_text(json.dumps(manifest, indent=1) + '\n')
    if folder.resolve() == bundled_dir().resolve(): _MANIFEST['default'] = manifest['default']
    return register_model(info)

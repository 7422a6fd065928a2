"""Generator weights on disk: fp16 safetensors with the architecture in the metadata, written atomically.

A weights file says which `GENERATOR_CONFIGS` entry it belongs to, so `load_generator(path)` needs nothing else.
"""
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, safe_open, save_file

from .files import atomic_path
from .models import check_arch, create_generator

__all__ = ['save_generator', 'load_generator', 'load_model', 'weights_path', 'default_model_for', 'read_metadata',
           'read_generator_state']


def save_generator(model, path, arch, half=True, **metadata) -> Path:
    "Write `model`'s state_dict (fp16 by default) and `arch` plus `metadata` (JSON-able) to `path`, atomically."
    sd = {k: (v.half() if half and v.is_floating_point() else v).contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {'arch': arch, **{k: json.dumps(v) for k, v in metadata.items()}}
    with atomic_path(path) as tmp: save_file(sd, tmp, metadata=meta)
    return Path(path)


def read_metadata(path) -> dict:
    "The metadata of a weights file: 'arch' and the JSON values saved with it."
    with safe_open(str(path), framework='pt') as f: meta = f.metadata() or {}
    return {k: v if k == 'arch' else json.loads(v) for k, v in meta.items()}


def load_generator(path, device='cpu'):
    """The generator stored in the safetensors file `path`, in fp32 and eval mode: the architecture its metadata
    names (older names resolved), quality-aware when the file holds the quality layers. Any file that is not
    such weights raises a ValueError naming it."""
    path = Path(path)
    try:
        meta = read_metadata(path)
        sd = {k: v.float() for k, v in load_file(str(path)).items()}
    except FileNotFoundError: raise FileNotFoundError(f'{path}: no such weights file') from None
    except Exception as e: raise ValueError(f'{path}: not a weights file ({type(e).__name__}: {e})') from None
    if 'arch' not in meta: raise ValueError(f'{path}: weights file has no architecture in its metadata')
    try: arch = check_arch(meta['arch'])
    except ValueError as e: raise ValueError(f'{path}: {e}') from None
    model = create_generator(arch, quality_aware=any(k.startswith('film.') for k in sd))
    try: model.load_state_dict(sd)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        raise ValueError(f'{path}: the weights do not fit the {arch} generator ({first})') from None
    return model.to(device).eval()


def weights_path(model):
    "The weights file `model` names: a registry name ('default' included) or a path; None for an nn.Module."
    if isinstance(model, torch.nn.Module): return None
    from .registry import default_model, model_path
    name = default_model() if model == 'default' else str(model)
    return Path(name) if name.endswith('.safetensors') or Path(name).is_file() else model_path(name)


def default_model_for(scale=None) -> str:
    """The registry's model for 'default' at `scale`: the default model (None or 1), else 'sr<scale>' (e.g. 'sr2'), or the
    first registered model whose architecture upscales by `scale`."""
    from .models import GENERATOR_CONFIGS
    from .registry import default_model, get_model_info, list_models
    if scale in (None, 1): return default_model()
    scale_of = lambda name: GENERATOR_CONFIGS.get(check_arch(get_model_info(name).arch), {}).get('scale', 1)
    named = [f'sr{scale}'] if f'sr{scale}' in list_models() else []
    found = named + [m for m in list_models() if m not in named and scale_of(m) == scale]
    if not found: raise ValueError(f'no x{scale} model is registered; pass the weights file of one')
    return found[0]


def load_model(model='default', device='cpu') -> torch.nn.Module:
    "A generator in eval mode on `device` from a registry name, a weights file, or an nn.Module (used as it is)."
    if isinstance(model, torch.nn.Module): return model.to(device).eval()
    return load_generator(weights_path(model), device)


def read_generator_state(path) -> dict:
    """A generator state_dict in fp32 from a .safetensors file, a run's .pth, or a stage checkpoint: the
    weights the stage keeps, its weight average ('ema') when it has one, else its 'model', so the checkpoint
    of a stopped run gives what `gen_pretrain.pth` would have held."""
    try:
        if str(path).endswith('.safetensors'): return {k: v.float() for k, v in load_file(str(path)).items()}
        st = torch.load(path, map_location='cpu', weights_only=True)
    except FileNotFoundError: raise FileNotFoundError(f'{path}: no such weights file') from None
    except Exception as e:  # truncated, corrupt or another kind of file; torch's own message suggests unsafe loading
        raise ValueError(f'{path}: not a weights file (a .safetensors, or a .pth holding a state_dict; '
                         f'{type(e).__name__})') from None
    if 'ema' in st: return {k[len('module.'):]: v for k, v in st['ema'].items() if k.startswith('module.')}
    return st['model'] if 'model' in st and isinstance(st['model'], dict) else st

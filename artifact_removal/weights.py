"""Generator weights on disk: fp16 safetensors with the architecture in the metadata, written atomically.

A weights file says which `GENERATOR_CONFIGS` entry it belongs to, so `load_generator(path)` needs nothing else.
"""
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, safe_open, save_file

from .files import atomic_path
from .models import create_generator

__all__ = ['save_generator', 'load_generator', 'read_metadata', 'read_generator_state']


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
    "The generator stored in the safetensors file `path`, in fp32 and eval mode."
    path = Path(path)
    try: meta = read_metadata(path)
    except Exception as e: raise ValueError(f'{path}: not a weights file ({e})') from None
    if 'arch' not in meta: raise ValueError(f'{path}: weights file has no architecture in its metadata')
    model = create_generator(meta['arch'])
    model.load_state_dict({k: v.float() for k, v in load_file(str(path)).items()})
    return model.to(device).eval()


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

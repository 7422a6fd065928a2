"""Fuzz `restore_image` as a hostile user would: arrays, tensors, PIL images, file bytes and odd objects, each case in
a child process with a time and a memory limit, with the settings (strength, tile, quality, out=) it is called with.

    nice -n 19 python benchmarks/fuzz.py --cases 10000 --out docs/benchmarks/fuzz.md

Cases are drawn by hypothesis as recipes (plain dicts, printable and replayable with `--replay`); the child builds
each input from its recipe, calls a shared `Restorer` (`restorer(src, ...)` is what `restore_image` calls) and
judges what came back. Outcomes:

- ok: an output of the right kind, shape and dtype, finite, in range, written where `out` asked, nothing partial left;
- refused: a documented error (`ImageReadError` or another ValueError, TypeError, FileNotFoundError) naming the input
  (a file's path, an array's or tensor's shape, a PIL image's size, the setting at fault);
- failures: crash (any other exception, or the child died), unnamed (a documented error that does not name what it
  refused), wrong (a wrong or non-finite output, `out` not written, a partial file left, a valid input refused or an
  invalid one taken), hang (past the time limit), memory (past the memory limit).

Most cases run on a small untrained plain CNN (fast); `--default-share` of them on the bundled default model. Both
backends (PyTorch, onnxruntime) are drawn. tests/test_fuzz.py runs a bounded sample of the same recipes in CI.
"""
import argparse
import importlib.util
import io
import json
import os
import pickle
import platform
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from hypothesis import strategies as st

OK, REFUSED = 'ok', 'refused'
FAILURES = ('crash', 'unnamed', 'wrong', 'hang', 'memory', 'harness')  # harness: the fuzzer's own fault
OUTCOMES = (OK, REFUSED) + FAILURES

# --- recipes: what hypothesis draws (plain data, so a failing case prints and replays)

ARRAY_DTYPES = ['uint8', 'uint16', '>u2', 'float16', 'float32', '>f4', 'float64', 'longdouble',  # taken
                'int8', 'int16', 'int32', 'int64', 'uint32', 'bool', 'complex64', 'object']      # refused
TENSOR_DTYPES = ['uint8', 'uint16', 'float16', 'bfloat16', 'float32', 'float64',
                 'int8', 'int16', 'int32', 'int64', 'bool', 'complex64']
VALID_PATTERNS = ['noise', 'flat', 'gradient', 'overshoot']  # overshoot: [-0.05, 1.05], clipped
HOSTILE_PATTERNS = ['nan_patch', 'inf_patch', 'scale255', 'signed', 'extreme']
PIL_MODES = ['1', 'L', 'LA', 'La', 'P', 'PA', 'P_transparent', 'RGB', 'RGBA', 'RGBa', 'RGBX', 'CMYK', 'YCbCr',
             'LAB', 'HSV', 'I', 'I;16', 'I;16B', 'I;16L', 'F']
FILE_FORMATS = ['png', 'png_gray16', 'png_rgba', 'png_palette', 'jpeg', 'jpeg_progressive', 'jpeg_gray', 'jpeg_cmyk',
                'jpeg_exif_rotated', 'gif', 'gif_animated', 'webp', 'webp_lossless', 'tiff', 'tiff_16', 'tiff_float',
                'bmp', 'ico', 'ppm', 'tga', 'jpeg2000', 'random_bytes', 'empty', 'text']
MUTATIONS = ['none', 'truncate', 'flip', 'insert', 'delete', 'claim_size', 'garbage_tail', 'header_only']
OBJECTS = ['none', 'int', 'float', 'empty_str', 'missing_file', 'missing_folder', 'bytes', 'nested_list', 'dict',
           'list_with_none', 'empty_list', 'empty_folder', 'folder_with_image', 'plain_object', 'nul_in_path']

def _pick(*weighted):
    """One of the values of `weighted` ((weight, [values]) pairs) at those odds. Hypothesis draws the seed, so the
    odds hold (its own choices lean towards the first option, which would make odd cases rarer than asked)."""
    import random
    def choose(seed):
        rng = random.Random(seed)
        weight, values = rng.choices(weighted, weights=[w for w, _ in weighted])[0]
        return rng.choice(values)
    return st.integers(0, 2 ** 32 - 1).map(choose)


def options():
    "Settings of a call: the defaults most of the time, sometimes other valid ones, sometimes invalid (~15% of cases)."
    nan, inf = float('nan'), float('inf')
    return st.fixed_dictionaries({
        'strength': _pick((90, [1.0]), (6, [0.0, 0.37, 0.8]), (4, [nan, -0.5, 2.0, inf, '1', True])),
        'tile': _pick((85, [None]), (10, [0, 32, 64]), (5, [-5, 12.5, True])),
        'quality': _pick((88, [None]), (8, [1, 50, 100]), (4, [0, 101, nan])),
        'out': _pick((85, [None]), (12, ['png', 'png', 'tif', 'jpg', 'webp', 'bmp']), (3, ['xyz'])),
        'backend': _pick((1, ['torch']), (1, ['onnx'])),
    })


def _side(max_side=64): return _pick((95, list(range(1, max_side + 1))), (5, [0]))


def _shape(image):
    "An image shape (`image`: a strategy) most of the time, else any shape of up to 5 small dimensions."
    return st.one_of(*[image] * 4, st.lists(st.integers(0, 8), min_size=0, max_size=5).map(tuple))


def array_recipes():
    channels = _pick((85, [1, 2, 3, 3, 3, 4]), (15, [0, 5, 6]))
    shape = _shape(st.one_of(st.tuples(_side(), _side()), st.tuples(_side(), _side(), channels),
                             st.tuples(_side(), _side(), channels)))
    return st.fixed_dictionaries({
        'kind': st.just('array'), 'dtype': _pick((75, ARRAY_DTYPES[:8]), (25, ARRAY_DTYPES[8:])), 'shape': shape,
        'pattern': _pick((70, VALID_PATTERNS), (30, HOSTILE_PATTERNS)), 'seed': st.integers(0, 2 ** 32 - 1),
        'layout': _pick((60, ['c']), (40, ['fortran', 'flipped', 'strided', 'readonly', 'matrix'])),
        'options': options()})


def tensor_recipes():
    channels = _pick((85, [1, 2, 3, 3, 3, 4]), (15, [0, 5]))
    shape = _shape(st.one_of(st.tuples(channels, _side(), _side()),
                             st.tuples(_pick((90, [1, 2, 3]), (10, [0])), channels, _side(48), _side(48))))
    return st.fixed_dictionaries({
        'kind': st.just('tensor'), 'dtype': _pick((75, TENSOR_DTYPES[:6]), (25, TENSOR_DTYPES[6:])), 'shape': shape,
        'pattern': _pick((70, VALID_PATTERNS), (30, HOSTILE_PATTERNS)), 'seed': st.integers(0, 2 ** 32 - 1),
        'layout': _pick((60, ['c']), (40, ['channels_last', 'transposed', 'grad', 'expanded'])),
        'options': options()})


def pil_recipes():
    return st.fixed_dictionaries({
        'kind': st.just('pil'), 'mode': st.sampled_from(PIL_MODES), 'size': st.tuples(_side(), _side()),
        'pattern': _pick((70, VALID_PATTERNS), (30, HOSTILE_PATTERNS)), 'seed': st.integers(0, 2 ** 32 - 1),
        'options': options()})


def file_recipes():
    return st.fixed_dictionaries({
        'kind': st.just('file'), 'format': st.sampled_from(FILE_FORMATS),
        'size': st.tuples(st.integers(1, 64), st.integers(1, 64)),
        'mutation': _pick((35, ['none']), (65, MUTATIONS[1:])),
        'amount': st.floats(0, 1), 'seed': st.integers(0, 2 ** 32 - 1),
        'name': _pick((80, ['image']), (20, ['with space', 'ünïcödé', '.hidden', 'x' * 120])),
        'extension': _pick((80, ['own']), (20, ['.png', '.jpg', '.bin', ''])), 'options': options()})


def object_recipes():
    return st.fixed_dictionaries({'kind': st.just('object'), 'object': st.sampled_from(OBJECTS), 'options': options()})


def recipes():
    "Every kind of case: arrays and files the most (they are what users pass), objects the least."
    kinds = {'array': array_recipes(), 'tensor': tensor_recipes(), 'pil': pil_recipes(), 'file': file_recipes(),
             'object': object_recipes()}
    return _pick((30, ['array']), (15, ['tensor']), (15, ['pil']), (35, ['file']), (5, ['object'])).flatmap(kinds.get)


def with_model(recipes_strategy, default_share=0.02):
    "Recipes with a `model`: the bundled default for `default_share` of them, else the small plain CNN."
    return st.tuples(recipes_strategy, _pick((default_share, ['default']), (1 - default_share, ['plain']))).map(
        lambda t: {**t[0], 'model': t[1]})


# --- building inputs from recipes (in the child)

def _base(shape, pattern, seed):
    "Values in [0, 1] (float64) of `shape` by `pattern`, then made hostile: NaN or inf patches, other scales."
    import numpy as np
    rng = np.random.default_rng(seed)
    if pattern == 'flat': a = np.full(shape, rng.random())
    elif pattern == 'gradient': a = np.broadcast_to(np.linspace(0, 1, shape[0] if shape else 1).reshape(
        (-1,) + (1,) * (len(shape) - 1)) if shape else np.array(0.5), shape).copy()
    else: a = rng.random(shape)
    if pattern in ('nan_patch', 'inf_patch') and a.size:
        idx = tuple(slice(0, max(1, s // 3)) for s in a.shape)
        a[idx] = np.nan if pattern == 'nan_patch' else np.inf * rng.choice([-1, 1])
    elif pattern == 'scale255': a = a * 255
    elif pattern == 'signed': a = a * 2 - 1
    elif pattern == 'overshoot': a = a * 1.1 - 0.05
    elif pattern == 'extreme': a = a * 1e30
    return a


def build_array(r):
    import numpy as np
    a = _base(tuple(r['shape']), r['pattern'], r['seed'])
    dtype = r['dtype']
    finite = np.nan_to_num(a, nan=0, posinf=1, neginf=0)
    if dtype in ('uint8', 'int8', 'int16', 'int32', 'int64'): x = np.clip(finite * 255, -128, 255).round().astype(dtype)
    elif dtype in ('uint16', '>u2', 'uint32'): x = np.clip(finite * 65535, 0, 65535).round().astype(dtype)
    elif dtype == 'bool': x = finite > 0.5
    else:
        with np.errstate(over='ignore', invalid='ignore'): x = a.astype(dtype)
    x, layout = np.asarray(x), r['layout']  # a 0-d array, not the numpy scalar astype gives for one
    if layout == 'fortran': x = np.asfortranarray(x)
    elif layout == 'flipped' and x.ndim: x = np.flip(x, 0)
    elif layout == 'strided' and x.ndim >= 2: x = np.repeat(x, 2, axis=1)[:, ::2]
    elif layout == 'readonly': x = x.copy(); x.flags.writeable = False
    elif layout == 'matrix' and x.ndim == 2: x = np.asmatrix(x)
    return x


def build_tensor(r):
    import numpy as np
    import torch
    shape = tuple(r['shape'])
    layout = r['layout']
    if layout == 'transposed' and len(shape) >= 2: shape = shape[:-2] + shape[-2:][::-1]
    a = _base(shape, r['pattern'], r['seed'])
    dtype = getattr(torch, r['dtype'])
    a = np.asarray(a)
    finite = np.asarray(np.nan_to_num(a, nan=0, posinf=1, neginf=0))
    if dtype in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64):
        t = torch.as_tensor(np.clip(finite * 255, -128, 255).round().astype(np.int64)).to(dtype)
    elif dtype == torch.uint16: t = torch.as_tensor(np.clip(finite * 65535, 0, 65535).round().astype(np.int64)).to(dtype)
    elif dtype == torch.bool: t = torch.as_tensor(finite > 0.5)
    else: t = torch.from_numpy(a).to(dtype)
    if layout == 'transposed' and t.ndim >= 2: t = t.transpose(-1, -2)
    elif layout == 'channels_last' and t.ndim == 4: t = t.contiguous(memory_format=torch.channels_last)
    elif layout == 'grad' and t.is_floating_point(): t = t.clone().requires_grad_(True)
    elif layout == 'expanded' and t.ndim >= 3 and t.shape[-3] > 0: t = t.narrow(-3, 0, 1).expand(*t.shape)
    return t


def build_pil(r):
    import numpy as np
    from PIL import Image
    w, h = r['size']
    mode, pattern = r['mode'], r['pattern']
    a = _base((h, w, 3), pattern, r['seed'])
    if mode == 'F': return Image.fromarray(a[..., 0].astype(np.float32), 'F')
    if mode == 'I':
        with np.errstate(invalid='ignore'):
            v = np.nan_to_num(a[..., 0] * 65535, nan=0, posinf=2 ** 31 - 1, neginf=-2 ** 31)
        return Image.fromarray(np.clip(v, -2 ** 31, 2 ** 31 - 1).astype(np.int32), 'I')
    rgb = Image.fromarray((np.clip(np.nan_to_num(a, nan=0), 0, 1) * 255).round().astype(np.uint8), 'RGB')
    if mode == 'P_transparent':
        p = rgb.convert('P'); p.info['transparency'] = 0
        return p
    if mode in ('I;16', 'I;16B', 'I;16L'):
        g = (np.clip(np.nan_to_num(a[..., 0], nan=0), 0, 1) * 65535).astype('<u2' if mode != 'I;16B' else '>u2')
        return Image.frombytes(mode, (w, h), g.tobytes())
    for via in ((), ('RGBA',), ('LA',), ('L',)):
        try:
            im = rgb
            for m in via + (mode,): im = im.convert(m)
            return im
        except ValueError: pass
    return Image.new(mode, (w, h))


def _encode(fmt, size, seed):
    "(bytes, extension, still and readable?) of a small picture in `fmt`."
    import numpy as np
    from PIL import Image
    if fmt == 'random_bytes': return np.random.default_rng(seed).bytes(int(seed % 5000)), '.png', False
    if fmt == 'empty': return b'', '.jpg', False
    if fmt == 'text': return b'not an image, just text\n' * 10, '.png', False
    w, h = size
    a = (_base((h, w, 3), 'noise', seed) * 255).astype(np.uint8)
    im, buf = Image.fromarray(a), io.BytesIO()
    kind, _, variant = fmt.partition('_')
    if fmt == 'png': im.save(buf, 'PNG')
    elif fmt == 'png_gray16': Image.fromarray(a[..., 0].astype(np.uint16) * 257).save(buf, 'PNG')
    elif fmt == 'png_rgba': im.convert('RGBA').save(buf, 'PNG')
    elif fmt == 'png_palette': im.convert('P').save(buf, 'PNG', transparency=0)
    elif fmt == 'jpeg': im.save(buf, 'JPEG', quality=int(seed % 100) + 1)
    elif fmt == 'jpeg_progressive': im.save(buf, 'JPEG', progressive=True, quality=30)
    elif fmt == 'jpeg_gray': im.convert('L').save(buf, 'JPEG', quality=20)
    elif fmt == 'jpeg_cmyk': im.convert('CMYK').save(buf, 'JPEG', quality=40)
    elif fmt == 'jpeg_exif_rotated':
        exif = Image.Exif(); exif[0x0112] = int(seed % 8) + 1
        im.save(buf, 'JPEG', quality=50, exif=exif)
    elif fmt == 'gif': im.convert('P').save(buf, 'GIF')
    elif fmt == 'gif_animated':
        im.convert('P').save(buf, 'GIF', save_all=True, append_images=[im.rotate(90).convert('P')])
        return buf.getvalue(), '.gif', False
    elif fmt == 'webp': im.save(buf, 'WEBP', quality=30)
    elif fmt == 'webp_lossless': im.save(buf, 'WEBP', lossless=True)
    elif fmt == 'tiff': im.save(buf, 'TIFF', compression='tiff_lzw')
    elif fmt == 'tiff_16': Image.fromarray(a[..., 0].astype(np.uint16) * 257).save(buf, 'TIFF')
    elif fmt == 'tiff_float': Image.fromarray(a[..., 0].astype(np.float32) / 255, 'F').save(buf, 'TIFF')
    elif fmt == 'bmp': im.save(buf, 'BMP')
    elif fmt == 'ico': im.save(buf, 'ICO', sizes=[(min(w, 64), min(h, 64))])
    elif fmt == 'ppm': im.save(buf, 'PPM')
    elif fmt == 'tga': im.save(buf, 'TGA')
    elif fmt == 'jpeg2000': im.save(buf, 'JPEG2000')
    ext = {'jpeg': '.jpg', 'tiff': '.tif', 'jpeg2000': '.jp2'}.get(kind, '.' + kind)
    return buf.getvalue(), ext, True


def _claim_size(data, rng):
    "`data` with its width and height fields (PNG IHDR, JPEG SOF, GIF, BMP) set to large values."
    b = bytearray(data)
    big = int(rng.choice([9000, 16383, 30000, 65500]))
    if b[:8] == b'\x89PNG\r\n\x1a\n' and len(b) >= 24: struct.pack_into('>II', b, 16, big, big)
    elif b[:2] == b'\xff\xd8':
        sof = max(b.find(b'\xff\xc0'), b.find(b'\xff\xc2'))
        if sof >= 0 and len(b) >= sof + 9: struct.pack_into('>HH', b, sof + 5, big, big)
    elif b[:3] == b'GIF' and len(b) >= 10: struct.pack_into('<HH', b, 6, big, big)
    elif b[:2] == b'BM' and len(b) >= 26: struct.pack_into('<ii', b, 18, big, big)
    elif len(b) >= 8: struct.pack_into('>HH', b, 4, big, big)
    return bytes(b)


def build_file(r, folder):
    "The file of a file recipe in `folder`: its path, and whether it must restore (an unmutated still image)."
    import numpy as np
    data, ext, still = _encode(r['format'], r['size'], r['seed'])
    rng, n, m = np.random.default_rng(r['seed']), len(data), r['mutation']
    cut = int(r['amount'] * n)
    if m == 'truncate': data = data[:cut]
    elif m == 'flip' and n:
        b = bytearray(data)
        for i in rng.integers(0, n, 1 + int(r['amount'] * 8)): b[i] ^= 1 << int(rng.integers(0, 8))
        data = bytes(b)
    elif m == 'insert': data = data[:cut] + rng.bytes(1 + int(rng.integers(0, 64))) + data[cut:]
    elif m == 'delete': data = data[:cut] + data[cut + 1 + int(rng.integers(0, 64)):]
    elif m == 'claim_size': data = _claim_size(data, rng)
    elif m == 'garbage_tail': data = data + rng.bytes(1 + int(rng.integers(0, 4096)))
    elif m == 'header_only': data = data[:min(n, 64)]
    ext = ext if r['extension'] == 'own' else r['extension']
    path = folder / (r['name'] + ext)
    path.write_bytes(data)
    return path, still and m in ('none', 'garbage_tail')


def build_object(r, folder):
    "An object that is not an image (or a path that holds none): what it is, and whether it must restore."
    o = r['object']
    if o == 'folder_with_image':
        from PIL import Image
        (folder / 'photos').mkdir()
        Image.new('RGB', (20, 12), (10, 200, 30)).save(folder / 'photos' / 'a.png')
        return folder / 'photos', True
    if o == 'empty_folder':
        (folder / 'nothing').mkdir()
        return folder / 'nothing', False
    return {'none': None, 'int': 7, 'float': 0.5, 'empty_str': '', 'missing_file': str(folder / 'missing.png'),
            'missing_folder': folder / 'no' / 'such' / 'folder', 'bytes': b'\x89PNG\r\n', 'nested_list': [[0.1, 0.2]],
            'dict': {'image': 1}, 'list_with_none': [None], 'empty_list': [], 'plain_object': object(),
            'nul_in_path': str(folder / 'a\x00b.png')}[o], o == 'empty_list'


# --- judging a case (in the child)

def _options_valid(opts) -> dict:
    "Which settings are valid: the contract `restore_image` documents."
    import math
    num = lambda x: isinstance(x, (int, float)) and not isinstance(x, bool)
    return {'strength': num(opts['strength']) and 0 <= opts['strength'] <= 1,
            'tile': opts['tile'] is None or (isinstance(opts['tile'], int) and not isinstance(opts['tile'], bool)
                                             and opts['tile'] >= 0),
            'quality': opts['quality'] is None or (num(opts['quality']) and not math.isnan(opts['quality'])
                                                   and 1 <= opts['quality'] <= 100)}


def _array_valid(a) -> bool:
    import numpy as np
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 2, 3, 4)) or min(a.shape[:2]) < 1: return False
    if a.dtype.kind == 'u': return a.dtype.itemsize in (1, 2)
    if a.dtype.kind != 'f': return False
    return bool(np.isfinite(a).all()) and -0.1 <= float(a.min()) and float(a.max()) <= 1.1


def _tensor_valid(t) -> bool:
    import torch
    ok_dtype = t.dtype in (torch.uint8, torch.uint16, torch.float16, torch.bfloat16, torch.float32, torch.float64)
    if not ok_dtype or t.ndim not in (3, 4) or not 1 <= t.shape[-3] <= 4 or min(t.shape[-2:]) < 1: return False
    if not t.is_floating_point() or t.numel() == 0: return True
    f = t.detach().float()
    return bool(torch.isfinite(f).all()) and -0.1 <= float(f.min()) and float(f.max()) <= 1.1


def _pil_valid(im) -> bool:
    import numpy as np
    if min(im.size) < 1: return False
    if im.mode == 'I': a = np.asarray(im); return bool(a.min() >= 0 and a.max() <= 65535)
    if im.mode == 'F':
        a = np.asarray(im)
        return bool(np.isfinite(a).all() and a.min() >= -0.1 and a.max() <= 1.1)
    return True


def _output_problem(src, result, kind):
    "What is wrong with `result` for the input `src` of `kind` (None: it is right)."
    import numpy as np
    import torch
    from PIL import Image
    if kind == 'array':
        src = np.asarray(src)
        if not isinstance(result, np.ndarray): return f'an array came back as {type(result).__name__}'
        if result.shape != src.shape or result.dtype != src.dtype:
            return f'{src.dtype} {src.shape} came back as {result.dtype} {result.shape}'
        if result.dtype.kind == 'f':
            f = result.astype(np.float64)
            if not np.isfinite(f).all() or f.min() < 0 or f.max() > 1: return 'non-finite or out-of-range values'
        return None
    if kind == 'tensor':
        if not isinstance(result, torch.Tensor): return f'a tensor came back as {type(result).__name__}'
        if result.shape != src.shape or result.dtype != src.dtype or result.device != src.device:
            return f'{src.dtype} {tuple(src.shape)} came back as {result.dtype} {tuple(result.shape)}'
        if result.is_floating_point() and result.numel():
            f = result.detach().float()
            if not torch.isfinite(f).all() or f.min() < 0 or f.max() > 1: return 'non-finite or out-of-range values'
        return None
    if kind in ('pil', 'file'):
        if not isinstance(result, Image.Image): return f'a {kind} came back as {type(result).__name__}'
        if kind == 'pil' and result.size != src.size: return f'{src.size} came back as {result.size}'
        if kind == 'file':
            from PIL import ImageOps
            with Image.open(src) as im: size = ImageOps.exif_transpose(im).size
            if result.size != size: return f'{size} came back as {result.size}'
        if result.mode == 'F' and not np.isfinite(np.asarray(result)).all(): return 'non-finite values'
        return None
    if kind == 'object':
        if not isinstance(result, list) or not all(isinstance(x, Image.Image) for x in result):
            return f'a folder or list came back as {type(result).__name__}'
    return None


def _names(src, kind, valid, out):
    "Substrings of which an error message must hold one: it names its input, or the setting at fault."
    names = [k for k, ok in valid.items() if not ok]
    if out is not None: names.append(str(out))
    if kind in ('array', 'tensor'): names.append(str(tuple(src.shape)))
    elif kind == 'pil': names.append(f'{src.width}x{src.height}')
    elif kind == 'file': names.append(str(src))
    else:
        names += ['got None', 'got a ', 'got an ', 'empty path']
        if isinstance(src, (str, Path)) and str(src): names.append(str(src))
    return names


def judge(r, restorer, folder):
    "(outcome, detail) of the recipe `r` run on `restorer` in the empty `folder`."
    import numpy as np
    from PIL import Image
    kind, opts = r['kind'], r['options']
    try:
        if kind == 'array': src = build_array(r); valid_input = _array_valid(np.asarray(src))
        elif kind == 'tensor': src = build_tensor(r); valid_input = _tensor_valid(src)
        elif kind == 'pil': src = build_pil(r); valid_input = _pil_valid(src)
        elif kind == 'file': src, valid_input = build_file(r, folder)
        else: src, valid_input = build_object(r, folder)
    except Exception as e: return 'harness', f'building the case failed: {type(e).__name__}: {e}'
    valid = _options_valid(opts)
    out = folder / f'restored.{opts["out"]}' if opts['out'] else None
    # what must happen: a valid input with valid settings is restored, anything invalid refused; a mutated file,
    # or an out= file whose format may not hold the result (JPEG and alpha, PNG and float), may go either way
    if not all(valid.values()): expect = REFUSED
    elif out is not None: expect = 'either'
    elif kind == 'file': expect = OK if valid_input else 'either'
    else: expect = OK if valid_input else REFUSED
    try:
        result = restorer(src, strength=opts['strength'], tile=opts['tile'], quality=opts['quality'], out=out,
                          progress=False)
    except (ValueError, TypeError, FileNotFoundError) as e:  # the documented errors
        msg = str(e)
        if not any(n in msg for n in _names(src, kind, valid, out)): return 'unnamed', f'{type(e).__name__}: {msg}'
        if expect == OK: return 'wrong', f'a valid input was refused: {type(e).__name__}: {msg}'
        return _leftover(folder) or (REFUSED, f'{type(e).__name__}: {msg[:200]}')
    except Exception as e:
        import traceback
        return 'crash', f'{type(e).__name__}: {e} | {traceback.format_exc(limit=-3)}'
    if expect == REFUSED: return 'wrong', 'an invalid input or setting was taken without an error'
    try: problem = _output_problem(src, result, kind)
    except Exception as e: return 'harness', f'checking the output failed: {type(e).__name__}: {e}'
    if problem is None and out is not None:
        if not out.is_file(): problem = f'out={out.name} was not written'
        else:
            with Image.open(out) as saved:
                size = result.size if isinstance(result, Image.Image) else (
                    (result.shape[-1], result.shape[-2]) if kind == 'tensor' else (result.shape[1], result.shape[0]))
                if saved.size != size: problem = f'out= holds {saved.size}, the result is {size}'
    return (('wrong', problem) if problem else None) or _leftover(folder) or (OK, '')


def _leftover(folder):
    parts = [p.name for p in Path(folder).rglob('*') if '.part.' in p.name]
    return ('wrong', f'partial files left: {parts}') if parts else None


# --- the child process: one restorer per (model, backend), cases in, judgements out

def _send(fd, obj):
    data = pickle.dumps(obj)
    os.write(fd, struct.pack('<Q', len(data)))
    view = memoryview(data)
    while view: view = view[os.write(fd, view):]


def _recv(fd, timeout=None):
    "The next message from `fd`; None at end of file; TimeoutError when nothing came within `timeout`."
    if timeout is not None and not select.select([fd], [], [], timeout)[0]: raise TimeoutError
    head = _read(fd, 8)
    if head is None: return None
    body = _read(fd, struct.unpack('<Q', head)[0])
    return None if body is None else pickle.loads(body)


def _read(fd, n):
    chunks = []
    while n:
        b = os.read(fd, min(n, 1 << 20))
        if not b: return None
        chunks.append(b); n -= len(b)
    return b''.join(chunks)


def _child(rfd, wfd):
    os.dup2(2, 1)  # what the library prints (progress bars) goes to the log, the pipe carries only judgements
    import warnings
    warnings.simplefilter('ignore')
    import torch
    torch.set_num_threads(1)
    from artifact_removal.models import create_generator
    from artifact_removal.restore import Restorer
    torch.manual_seed(0)
    plain = create_generator('plain_cnn').eval()
    with torch.no_grad(): plain.body[-1].weight.normal_(0, 0.01)  # not the identity an untrained model starts as
    restorers, have_onnx = {}, importlib.util.find_spec('onnxruntime') is not None
    def restorer(model, backend):
        backend = backend if have_onnx else 'torch'  # onnxruntime is the 'onnx' extra
        if (model, backend) not in restorers:
            restorers[model, backend] = Restorer(plain if model == 'plain' else 'default', 'cpu', backend=backend,
                                                 threads=1)
        return restorers[model, backend]
    restorer('plain', 'torch'), restorer('plain', 'onnx')
    _send(wfd, 'ready')
    root = Path(tempfile.mkdtemp(prefix='fuzz_'))
    while (r := _recv(rfd)) is not None:
        if r['kind'] == 'selftest':  # the harness's own check: a hang, a memory hog, a hard exit
            if r['what'] == 'hang': time.sleep(3600)
            if r['what'] == 'memory': hog = bytearray(8 << 30); hog[::4096] = b'x' * len(hog[::4096])
            if r['what'] == 'exit': os._exit(3)
        folder = Path(tempfile.mkdtemp(dir=root))
        start = time.perf_counter()
        try: outcome, detail = judge(r, restorer(r.get('model', 'plain'), r['options']['backend']), folder)
        except Exception as e: outcome, detail = 'harness', f'judging failed: {type(e).__name__}: {e}'
        _send(wfd, (outcome, detail, time.perf_counter() - start))
        shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)


class Sandbox:
    """A child process that runs recipes with a time limit (`timeout` seconds per case) and a memory limit
    (`memory` bytes of resident memory); a child that hangs, grows past the limit or dies is replaced. Starting one
    (PyTorch, onnxruntime, an ONNX export) may take `start_timeout` seconds: minutes at `nice -n 19` on a busy machine."""
    def __init__(self, timeout=60, memory=3 << 30, log=None, start_timeout=3600):
        self.timeout, self.memory, self.log, self.start_timeout = timeout, memory, log or os.devnull, start_timeout
        self.proc = None
        self.restarts = -1
        self._start()

    def _start(self):
        self.close()
        to_child, from_child = os.pipe(), os.pipe()
        env = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                             os.environ.get('PYTHONPATH', '')])}
        with open(self.log, 'ab') as log:
            self.proc = subprocess.Popen([sys.executable, __file__, '--child', str(to_child[0]), str(from_child[1])],
                                         pass_fds=(to_child[0], from_child[1]), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=log, env=env)
        os.close(to_child[0]); os.close(from_child[1])
        self.w, self.r = to_child[1], from_child[0]
        self.restarts += 1
        try: ready = _recv(self.r, timeout=self.start_timeout)
        except TimeoutError: ready = None
        if ready != 'ready':
            self.proc.kill(); self.proc.wait()
            raise RuntimeError(f'the fuzz child did not start in {self.start_timeout} s (see {self.log})')

    def run(self, recipe) -> tuple:
        "(outcome, detail, seconds) of `recipe`."
        import psutil
        start = time.perf_counter()
        try: _send(self.w, recipe)
        except BrokenPipeError:
            self._start()
            return 'crash', 'the child had died', 0.0
        child = psutil.Process(self.proc.pid)
        while True:
            try:
                answer = _recv(self.r, timeout=0.05)
                if answer is None:
                    code = self.proc.wait()
                    self._start()
                    return 'crash', f'the child died (exit code {code})', time.perf_counter() - start
                return answer
            except TimeoutError: pass
            elapsed = time.perf_counter() - start
            try: rss = child.memory_info().rss
            except psutil.NoSuchProcess: rss = 0
            if elapsed > self.timeout or rss > self.memory:
                self.proc.kill(); self.proc.wait()
                self._start()
                if elapsed > self.timeout: return 'hang', f'no answer in {self.timeout} s', elapsed
                return 'memory', f'{rss / 2 ** 30:.1f} GiB resident (limit {self.memory / 2 ** 30:.1f})', elapsed

    def close(self):
        if self.proc is None: return
        try: _send(self.w, None)
        except OSError: pass
        try: self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired: self.proc.kill(); self.proc.wait()
        for fd in (self.w, self.r):
            try: os.close(fd)
            except OSError: pass
        self.proc = None


# --- the benchmark: many cases, counts by outcome, a report

def fuzz(n, seed, sandbox, default_share=0.05, on_case=None) -> list:
    """Run `n` distinct hypothesis-drawn recipes (it draws some again; those are skipped); the list of (recipe,
    outcome, detail, seconds)."""
    from hypothesis import HealthCheck, Phase, assume, given, settings
    from hypothesis import seed as hypothesis_seed
    results, seen = [], set()
    @hypothesis_seed(seed)
    @settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(recipe=with_model(recipes(), default_share))
    def one(recipe):
        key = json.dumps(recipe, sort_keys=True, default=str)
        assume(key not in seen)
        seen.add(key)
        results.append((recipe, *sandbox.run(recipe)))
        if on_case: on_case(results)
    one()
    return results


def thread_check(rounds=3):
    "The largest difference between 8 threads on one default restorer and sequential calls, per backend."
    import io as _io
    from concurrent.futures import ThreadPoolExecutor
    import numpy as np
    from PIL import Image
    from artifact_removal.restore import Restorer
    rng, arrays = np.random.default_rng(0), []
    for i in range(16):
        h, w = [(96, 128), (64, 64), (80, 112), (130, 97)][i % 4]
        im = Image.fromarray((rng.random((h // 8, w // 8, 3)) * 255).astype(np.uint8)).resize((w, h), Image.BICUBIC)
        buf = _io.BytesIO(); im.save(buf, 'JPEG', quality=15); arrays.append(np.asarray(Image.open(buf)))
    worst = {}
    for backend in ('torch', 'onnx') if importlib.util.find_spec('onnxruntime') else ('torch',):
        r = Restorer(device='cpu', backend=backend)
        sequential = [r.restore_array(a) for a in arrays]
        diffs = []
        with ThreadPoolExecutor(8) as pool:
            for _ in range(rounds):
                diffs += [int(np.abs(s.astype(int) - c).max()) for s, c in zip(sequential, pool.map(r.restore_array, arrays))]
        worst[backend] = max(diffs)
    return worst


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try: cpu = next(l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name'))
    except (OSError, StopIteration): pass
    import numpy, PIL, torch
    try: import onnxruntime; ort = onnxruntime.__version__
    except ImportError: ort = 'not installed'
    return (f'{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__}, '
            f'onnxruntime {ort}, Pillow {PIL.__version__}, numpy {numpy.__version__}')


def report(results, seconds, command, threads=None, machine='', note='') -> str:
    by_kind = defaultdict(Counter)
    for r, outcome, *_ in results: by_kind[r['kind']][outcome] += 1
    total = Counter(o for _, o, *_ in results)
    distinct = len({json.dumps(r, sort_keys=True, default=str) for r, *_ in results})
    lines = [f'# Fuzzing restore_image: {len(results)} cases ({distinct} distinct)', '', f'`{command}`', '',
             f'{machine}. {seconds / 60:.0f} minutes{note}.', '',
             'Each case is an input drawn by hypothesis (an array, tensor, PIL image, file or other object, with '
             'odd dtypes, shapes, layouts, values and mutated bytes) and settings (strength, tile, quality, out=), '
             'run in a child process with a time and a memory limit; see the docstring of benchmarks/fuzz.py for '
             'what each outcome means. ok and refused are the two good outcomes.', '',
             '| input | ' + ' | '.join(OUTCOMES) + ' | cases |', '|---|' + '---:|' * (len(OUTCOMES) + 1)]
    for kind in sorted(by_kind):
        c = by_kind[kind]
        lines.append(f'| {kind} | ' + ' | '.join(str(c[o]) for o in OUTCOMES) + f' | {sum(c.values())} |')
    lines.append('| **all** | ' + ' | '.join(f'**{total[o]}**' for o in OUTCOMES) + f' | **{len(results)}** |')
    models = Counter(r.get('model', 'plain') for r, *_ in results)
    backends = Counter(r['options']['backend'] for r, *_ in results)
    times = sorted(t for *_, t in results)
    lines += ['', f'Models: {dict(models)} (plain: a small untrained plain CNN; default: the bundled weights). '
              f'Backends: {dict(backends)}. Time per case in the child: median '
              f'{1000 * times[len(times) // 2]:.0f} ms, slowest {times[-1]:.1f} s.' if times else '']
    if threads is not None:
        lines += ['', f'One default `Restorer` shared by 8 threads, 16 images of four sizes, compared with sequential '
                  f'calls: largest difference {threads} (in 1/255), target 0 on both backends.']
    bad = [(r, o, d) for r, o, d, _ in results if o in FAILURES]
    lines += ['', f'## Failures ({len(bad)})', '']
    lines += [f'- {o}: `{json.dumps(r, default=str)}`: {d[:300]}' for r, o, d in bad[:50]] or ['None.']
    return '\n'.join(lines) + '\n'


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--cases', type=int, default=10000)
    p.add_argument('--seed', type=int, default=19)
    p.add_argument('--timeout', type=float, default=60, help='seconds per case')
    p.add_argument('--memory-gb', type=float, default=3, help='resident memory limit of the child')
    p.add_argument('--default-share', type=float, default=0.05, help='share of cases on the bundled default model')
    p.add_argument('--out', help='markdown report to write (e.g. docs/benchmarks/fuzz.md)')
    p.add_argument('--log', default=None, help="the child's stderr (default: discarded)")
    p.add_argument('--results', help='JSON lines of every case (recipe, outcome, detail, seconds)')
    p.add_argument('--replay', help='a JSON recipe (as the report prints it) to run alone')
    p.add_argument('--child', nargs=2, type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child: return _child(*args.child)
    sandbox = Sandbox(args.timeout, int(args.memory_gb * 2 ** 30), args.log)
    try:
        if args.replay:
            print(sandbox.run(json.loads(args.replay)))
            return
        start = time.time()
        def progress(results):
            if len(results) % 100 == 0:
                c = Counter(o for _, o, *_ in results)
                print(f'{len(results)} cases, {time.time() - start:.0f} s: {dict(c)}', flush=True)
        results = fuzz(args.cases, args.seed, sandbox, args.default_share, progress)
    finally: sandbox.close()
    if args.results:
        with open(args.results, 'w') as f:
            for r, o, d, t in results: f.write(json.dumps({'recipe': r, 'outcome': o, 'detail': d, 'seconds': t},
                                                          default=str) + '\n')
    threads = thread_check()
    seconds = time.time() - start
    command = 'python benchmarks/fuzz.py ' + ' '.join(argv if argv is not None else sys.argv[1:])
    text = report(results, seconds, command, threads, _machine(),
                  f', child restarts {sandbox.restarts}')
    print(text)
    if args.out: Path(args.out).write_text(text)
    return 1 if any(o in FAILURES for _, o, *_ in results) or any(threads.values()) else 0


if __name__ == '__main__': sys.exit(main())

"""Export a generator to ONNX for deployment without PyTorch, and check onnxruntime gives the same output.

The graph takes a float32 Bx3xHxW image in [0, 1] of any batch and size (padding to the stride and cropping
back are in the graph) and returns the restored image, unclipped like the PyTorch model.
"""
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from .files import atomic_path

__all__ = ['export_onnx', 'check_onnx', 'OnnxGenerator']


def _module(model):
    if isinstance(model, torch.nn.Module): return model.eval()
    from .restore import Restorer
    return Restorer(model, device='cpu').model.float().to(memory_format=torch.contiguous_format)


def export_onnx(model='default', path='artifact_removal.onnx', opset=17, check=True) -> Path:
    """Write `model` (a registry name, weights file or nn.Module) to the ONNX file `path`, atomically; with
    `check`, verify onnxruntime against PyTorch on two sizes first (see `check_onnx`)."""
    m, dyn = _module(model), {0: 'batch', 2: 'height', 3: 'width'}
    with atomic_path(path) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')  # the TorchScript exporter's deprecation notice
            torch.onnx.export(m, (torch.rand(1, 3, 70, 90),), tmp, input_names=['image'], output_names=['restored'],
                              dynamic_axes={'image': dyn, 'restored': dyn}, opset_version=opset, dynamo=False)
        if check: check_onnx(tmp, m)
    return Path(path)


class OnnxGenerator:
    """A generator run by onnxruntime on the CPU, called like the PyTorch module on [0, 1] BxCxHxW tensors
    (gray as one channel). On this project's 2-core CPU it is 1.8x faster than PyTorch (docs/speed.md).

    The graph is exported once per weights and cached as `cache_dir()/onnx/<key>.onnx` (`key`: the weights'
    sha256), so later Restorers start in a fraction of a second; without a key it is exported to a temporary file."""
    def __init__(self, model: torch.nn.Module, key=None, threads=None):
        import onnxruntime as ort
        from .registry import cache_dir
        opts = ort.SessionOptions()
        if threads: opts.intra_op_num_threads = threads
        session = lambda p: ort.InferenceSession(str(p), opts, providers=['CPUExecutionProvider'])
        cached = cache_dir() / 'onnx' / f'{key}.onnx' if key else None
        try:
            if cached and not cached.is_file(): export_onnx(model, cached, check=False)
        except OSError: cached = None  # a read-only cache: export to a temporary file instead
        if cached: self.session = session(cached)
        else:
            with tempfile.TemporaryDirectory() as d: self.session = session(export_onnx(model, Path(d) / 'g.onnx', check=False))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        gray = x.shape[1] == 1
        inp = (x.expand(-1, 3, -1, -1) if gray else x).float().contiguous().numpy()
        y = torch.from_numpy(self.session.run(None, {'image': inp})[0])
        return y.mean(1, keepdim=True) if gray else y


def check_onnx(path, model, shapes=((1, 3, 96, 128), (2, 3, 61, 75)), atol=1e-3) -> float:
    "The largest |onnxruntime - PyTorch| over random images of `shapes`; raises if it is above `atol`."
    import onnxruntime as ort
    sess, m = ort.InferenceSession(str(path), providers=['CPUExecutionProvider']), _module(model)
    worst = 0.0
    for shape in shapes:
        x = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
        with torch.inference_mode(): ref = m(x).numpy()
        worst = max(worst, float(np.abs(sess.run(None, {'image': x.numpy()})[0] - ref).max()))
    if worst > atol: raise RuntimeError(f'{path}: onnxruntime differs from PyTorch by {worst:.2g} (> {atol})')
    return worst

"""Export a generator to ONNX for deployment without PyTorch, and check onnxruntime gives the same output.

The graph takes a float32 Bx3xHxW image in [0, 1] of any batch and size (padding to the stride and cropping
back are in the graph) and returns the restored image, unclipped like the PyTorch model.
"""
import warnings
from pathlib import Path

import numpy as np
import torch

from .files import atomic_path

__all__ = ['export_onnx', 'check_onnx']


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

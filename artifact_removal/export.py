"""Export a generator to ONNX for deployment without PyTorch, and check onnxruntime gives the same output.

The graph takes a float32 Bx3xHxW image in [0, 1] of any batch and size (padding to the stride and cropping
back are in the graph) and, for a quality-aware model, a float32 Bx1 `quality` (the JPEG quality, 1-100, that
`Restorer` reads from the file or estimates); it returns the restored image clipped to [0, 1].
"""
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from .files import atomic_path
from .weights import load_model

__all__ = ['export_onnx', 'export_estimator_onnx', 'check_onnx', 'OnnxGenerator']


def _module(model): return load_model(model, 'cpu').float().to(memory_format=torch.contiguous_format)


class _Clipped(torch.nn.Module):
    "The generator with its output clipped to [0, 1], as every image it makes is stored: what the graph returns."
    def __init__(self, model):
        super().__init__()
        self.model, self.quality_aware = model, getattr(model, 'quality_aware', False)
    def forward(self, *inputs): return self.model(*inputs).clamp(0, 1)


def _inputs(model, shape, seed=0) -> dict:
    "Random inputs of the graph for an image of `shape`: the image, and a quality per image when the model takes one."
    g = torch.Generator().manual_seed(seed)
    x = {'image': torch.rand(*shape, generator=g)}
    if getattr(model, 'quality_aware', False): x['quality'] = 1 + 99 * torch.rand(shape[0], 1, generator=g)
    return x


def _export(module, inputs, output, path, opset, check_shapes, atol=1e-3) -> Path:
    """`module` as the ONNX graph `path` (batch and image sizes dynamic), written atomically once onnxruntime matches
    PyTorch within `atol` on random inputs of `check_shapes` (none: unchecked)."""
    dyn = {0: 'batch', 2: 'height', 3: 'width'}
    axes = {**{k: dyn if v.ndim == 4 else {0: 'batch'} for k, v in inputs.items()}, output: {0: 'batch'}}
    if output == 'restored': axes[output] = dyn
    with atomic_path(path) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')  # the TorchScript exporter's deprecation notice
            torch.onnx.export(module, tuple(inputs.values()), tmp, input_names=list(inputs), output_names=[output],
                              dynamic_axes=axes, opset_version=opset, dynamo=False)
        if check_shapes: check_onnx(tmp, module, check_shapes, atol)
    return Path(path)


def export_onnx(model='default', path='artifact_removal.onnx', opset=17, check=True) -> Path:
    """Write `model` (a registry name, weights file or nn.Module) to the ONNX file `path`, atomically; with
    `check`, verify onnxruntime against PyTorch on two sizes first (see `check_onnx`)."""
    m = _Clipped(_module(model)).eval()  # export restores the top module's mode to every submodule
    return _export(m, _inputs(m, (2, 3, 70, 90)), 'restored', path, opset, CHECK_SHAPES if check else ())


def export_estimator_onnx(model='default', path='estimator.onnx', opset=17) -> Path:
    """Write the quality estimator of a quality-aware `model` to the ONNX file `path` (input `image` Bx3xHxW in
    [0, 1], output `quality` B), checked against PyTorch: for runtimes without PyTorch that restore images carrying
    no JPEG tables (the web page). The caller crops as `RestorationNet.estimate_quality` does."""
    m = _module(model)
    if not getattr(m, 'quality_aware', False): raise ValueError('this model is not quality-aware: it has no estimator')
    return _export(m.estimator, {'image': _inputs(m, (2, 3, 70, 90))['image']}, 'quality', path, opset, ((1, 3, 96, 128),))


CHECK_SHAPES = ((1, 3, 96, 128), (2, 3, 61, 75))


class OnnxGenerator:
    """A generator run by onnxruntime on the CPU, called like the PyTorch module on [0, 1] BxCxHxW tensors
    (gray as one channel): on CPUs faster than PyTorch (docs/benchmarks/speed.md).

    The graph is exported once per weights and cached as `cache_dir()/onnx/<key>.onnx` (`key`: the weights'
    sha256), so later Restorers start in a fraction of a second; without a key it is exported to a temporary file."""
    def __init__(self, model: torch.nn.Module, key=None, threads=None):
        import onnxruntime as ort
        from .registry import cache_dir
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL  # fuses conv+activation, NCHWc layouts
        if threads: opts.intra_op_num_threads = threads
        session = lambda p: ort.InferenceSession(str(p), opts, providers=['CPUExecutionProvider'])
        cached = cache_dir() / 'onnx' / f'{key}.clipped.onnx' if key else None  # older exports were not clipped
        try:
            if cached and not cached.is_file(): export_onnx(model, cached, check=False)
        except OSError: cached = None  # a read-only cache: export to a temporary file instead
        if cached: self.session = session(cached)
        else:
            with tempfile.TemporaryDirectory() as d: self.session = session(export_onnx(model, Path(d) / 'g.onnx', check=False))

    def __call__(self, x: torch.Tensor, quality=None) -> torch.Tensor:
        gray = x.shape[1] == 1
        feed = {'image': (x.expand(-1, 3, -1, -1) if gray else x).float().contiguous().numpy()}
        if quality is not None:
            feed['quality'] = torch.as_tensor(quality, dtype=torch.float32).reshape(-1, 1).expand(len(x), 1).numpy()
        y = torch.from_numpy(self.session.run(None, feed)[0])
        return y.mean(1, keepdim=True) if gray else y


def check_onnx(path, module, shapes=CHECK_SHAPES, atol=1e-3) -> float:
    """The largest |onnxruntime - PyTorch| of the graph `path` and the nn.Module `module` (it exports) over random
    inputs of `shapes`; raises if it is above `atol`."""
    import onnxruntime as ort
    sess = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    names, worst = [i.name for i in sess.get_inputs()], 0.0
    for shape in shapes:
        x = {k: v for k, v in _inputs(module, shape).items() if k in names}
        with torch.inference_mode(): ref = module(*x.values()).numpy()
        worst = max(worst, float(np.abs(sess.run(None, {k: v.numpy() for k, v in x.items()})[0] - ref).max()))
    if worst > atol: raise RuntimeError(f'{path}: onnxruntime differs from PyTorch by {worst:.2g} (> {atol})')
    return worst

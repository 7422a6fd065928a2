"""Restorer precision and the path around the network: bf16 keeps quality, settings are checked, nothing is copied
or converted twice."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

from artifact_removal import Restorer
from artifact_removal.precision import bf16_supported, choose_precision
from artifact_removal.tiling import arrays_to_batch, batch_to_arrays

needs_bf16 = pytest.mark.skipif(not bf16_supported('cpu'), reason='this CPU has no native bf16 (AVX512-BF16 or AMX)')


def _jpeg(im: Image.Image, quality) -> np.ndarray:
    buf = io.BytesIO(); im.save(buf, 'JPEG', quality=quality)
    return np.asarray(Image.open(buf).convert('RGB'))


def _crops(folder, n, size, glob='*'):
    "(clean, q10 JPEG) uint8 pairs: a `size` px crop at the centre of each of the first `n` images of `folder`."
    out = []
    for f in sorted(folder.glob(glob))[:n]:
        im = Image.open(f).convert('RGB')
        x0, y0 = (im.width - size) // 2 // 8 * 8, (im.height - size) // 2 // 8 * 8
        im = im.crop((x0, y0, x0 + size, y0 + size))
        out.append((np.asarray(im), _jpeg(im, 10)))
    return out


@pytest.fixture(scope='module')
def fp32(): return Restorer(device='cpu', backend='torch', precision='fp32')


@pytest.fixture(scope='module')
def bf16(): return Restorer(device='cpu', backend='torch', precision='bf16')


def _psnr(a, b): return 10 * np.log10(255 ** 2 / np.mean((a.astype(np.float64) - b) ** 2))


@needs_bf16
def test_bf16_is_within_2_levels_of_fp32_on_a_photo(fp32, bf16, data_dir):
    (_, x), = _crops(data_dir / 'valid', 1, 192, '*.jpg')
    a, b = fp32.restore_array(x, quality=10), bf16.restore_array(x, quality=10)
    diff = np.abs(a.astype(int) - b)
    assert np.abs(a.astype(int) - x).mean() > 1  # the network does something at q10
    assert diff.max() > 0  # bf16 did run: outputs bit for bit equal would mean fp32 twice
    assert (diff <= 2).mean() >= 0.999


@needs_bf16
def test_bf16_loses_at_most_0_02_db_on_live1_q10(fp32, bf16, data_dir):
    pairs = _crops(data_dir / 'test' / 'live1_color', 3, 192)
    loss = np.mean([_psnr(fp32.restore_array(x, quality=10), y) - _psnr(bf16.restore_array(x, quality=10), y)
                    for y, x in pairs])
    assert loss <= 0.02


def test_non_finite_reduced_precision_is_redone_in_fp32():
    class Overflows(torch.nn.Module):
        "Infinite under autocast, the identity in fp32."
        def forward(self, x): return x * float('inf') if torch.is_autocast_enabled('cpu') else x
    if not bf16_supported('cpu'): pytest.skip('bf16 autocast is what overflows here')
    r = Restorer(Overflows(), device='cpu', backend='torch', precision='bf16')
    a = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    with pytest.warns(UserWarning, match='bf16 gave non-finite values'): out = r.restore_array(a)
    assert np.array_equal(out, a)


def test_precision_is_checked_and_auto_resolved():
    with pytest.raises(ValueError, match="precision is one of 'auto', 'fp32', 'bf16', 'fp16', not 'half'"):
        Restorer(torch.nn.Identity(), device='cpu', precision='half')
    with pytest.raises(ValueError, match="'fp16' is for GPUs"): choose_precision('fp16', 'cpu')
    with pytest.raises(ValueError, match='onnx backend runs in fp32 only'):
        Restorer(torch.nn.Identity(), device='cpu', backend='onnx', precision='bf16')
    assert choose_precision('auto', 'cpu') == ('bf16' if bf16_supported('cpu') else 'fp32')
    assert choose_precision('auto', 'cuda') == 'fp16' and choose_precision('auto', 'mps') == 'fp32'


def test_auto_backend_is_onnxruntime_fp32_and_pytorch_runs_bf16():
    pytest.importorskip('onnxruntime')
    m = torch.nn.Identity()
    r = Restorer(m, device='cpu')
    assert (r.backend, r.precision) == ('onnx', 'fp32')
    r = Restorer(m, device='cpu', backend='torch')
    assert r.precision == ('bf16' if bf16_supported('cpu') else 'fp32')
    assert (Restorer(m, device='cpu', precision='bf16').backend) == 'torch'
    assert (Restorer(m, device='cpu', backend='onnx').precision) == 'fp32'


def test_onnx_session_is_fully_optimised_with_the_threads_asked_for():
    ort = pytest.importorskip('onnxruntime')
    from artifact_removal.models import create_generator
    r = Restorer(create_generator('plain_cnn'), device='cpu', backend='onnx', threads=1)
    opts = r._run.session.get_session_options()
    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert opts.intra_op_num_threads == 1


def test_conversions_around_the_network():
    "uint8 in: one converting pass into channels_last, not sharing memory; out: clipped and rounded as before."
    a = np.random.default_rng(0).integers(0, 256, (2, 30, 40, 3), dtype=np.uint8)
    t = arrays_to_batch(list(a))
    assert t.shape == (2, 3, 30, 40) and t.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(t, torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255)
    f = a[0].astype(np.float32) / 255
    t = arrays_to_batch([f]); t += 1
    assert f.max() <= 1  # a float array is copied, not changed through the batch
    y = torch.rand(2, 3, 30, 40) * 1.2 - 0.1
    for dtype in (np.uint8, np.uint16):
        scale = np.iinfo(dtype).max
        ref = (y.clamp(0, 1).permute(0, 2, 3, 1).numpy() * scale).round().astype(dtype)
        assert np.array_equal(np.stack(batch_to_arrays(y, dtype)), ref)
    assert np.array_equal(np.stack(batch_to_arrays(y, np.float32)), y.clamp(0, 1).permute(0, 2, 3, 1).numpy())

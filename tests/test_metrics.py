import numpy as np
import pytest
import torch

from artifact_removal.losses import CombinedLoss, PerceptualLoss, create_loss
from artifact_removal.metrics import STLPIPS, psnr, psnr_b, ssim


@pytest.mark.slow
def test_calibration_live1_color_q10(shared_data):
    "The JPEG input on LIVE1 color at q10 scores as FBCNN publishes: 25.69 dB, 0.7433, 24.20 dB."
    from artifact_removal.evaluate import opencv_jpeg, read_reference  # the protocol `eval` uses
    p, s, b = [], [], []
    for f in sorted((shared_data / 'test' / 'live1_color').glob('*.png')):
        bgr = read_reference(f)
        ref, img = bgr[..., ::-1], opencv_jpeg(bgr, 10)[..., ::-1]
        p.append(psnr(ref, img)); s.append(ssim(ref, img)); b.append(psnr_b(ref, img))
    assert len(p) == 29
    assert np.mean(p) == pytest.approx(25.69, abs=0.01)
    assert np.mean(s) == pytest.approx(0.7433, abs=0.0001)
    assert np.mean(b) == pytest.approx(24.20, abs=0.01)


def test_identical_images():
    a = (np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8)
    assert psnr(a, a) == float('inf') and ssim(a, a) == pytest.approx(1.0)


def test_stlpips_orders_damage():
    ref = torch.rand(3, 64, 64)
    m = STLPIPS(device='cpu')
    small, large = (ref + 0.02 * torch.randn_like(ref)).clamp(0, 1), (ref + 0.2 * torch.randn_like(ref)).clamp(0, 1)
    assert m(ref, ref) < 1e-6 < m(ref, small) < m(ref, large)


def test_losses_combine():
    x, y = torch.rand(2, 3, 32, 32, requires_grad=True), torch.rand(2, 3, 32, 32)
    loss = create_loss('l1:1,ssim:0.5')
    assert isinstance(loss, CombinedLoss) and set(loss.parts) == set()
    v = loss(x, y)
    v.backward()
    parts = {k: float(t) for k, t in loss.parts.items()}
    assert float(v) == pytest.approx(parts['l1'] + 0.5 * parts['ssim'], rel=1e-5) and x.grad is not None
    with pytest.raises(ValueError, match='unknown loss'): create_loss('l7')


def test_psnr_loss_weighs_every_image_by_its_db():
    "Minus the mean PSNR; an image 10x closer to its target pulls as hard on its own pixels, relative to its error."
    from artifact_removal.losses import PSNRLoss
    y = torch.rand(2, 3, 32, 32)
    noise = torch.randn(2, 3, 32, 32) * torch.tensor([0.1, 0.01])[:, None, None, None]
    x = (y + noise).requires_grad_()
    v = PSNRLoss(eps=0)(x, y)
    v.backward()
    mse = (noise ** 2).mean((1, 2, 3))
    assert float(v) == pytest.approx(float((10 * torch.log10(mse)).mean()), rel=1e-5)
    pull = x.grad.abs().mean((1, 2, 3)) / noise.abs().mean((1, 2, 3))
    assert float(pull[1] / pull[0]) == pytest.approx(100, rel=0.1)  # L1 would pull both the same, MSE 100x less
    assert PSNRLoss()(y, y) == pytest.approx(10 * np.log10((0.5 / 255) ** 2))


def test_flat_area_loss_sees_only_flat_areas():
    "Texture added to the flat half of a target costs; the same texture on its textured half costs nothing."
    from artifact_removal.losses import FlatAreaL1, flatness, rgb_to_ycbcr
    g = torch.Generator().manual_seed(0)
    y = torch.full((1, 3, 64, 64), 0.5)
    y[..., 32:] += 0.2 * torch.rand(1, 3, 64, 32, generator=g)
    w = flatness(rgb_to_ycbcr(y)[:, :1])
    assert float(w[..., :24].min()) > 0.99 and float(w[..., 40:].max()) < 0.01
    noise = 0.05 * torch.randn(1, 3, 64, 64, generator=g)
    on_flat, on_texture = y.clone(), y.clone()
    on_flat[..., :32] += noise[..., :32]
    on_texture[..., 32:] += noise[..., 32:]
    loss = FlatAreaL1()
    assert float(loss(on_flat, y)) > 0.02 > 0.002 > float(loss(on_texture, y)) and float(loss(y, y)) == 0


def test_perceptual_loss_on_unit_range():
    "LPIPS with an untrained trunk (offline) takes [0,1] images and gives 0 for identical ones."
    loss = PerceptualLoss(variant=None, pnet_rand=True)
    x = torch.rand(2, 3, 64, 64)
    assert float(loss(x, x)) == pytest.approx(0, abs=1e-6) and float(loss(x, 1 - x)) > 0

"""What people see at low quality: the grid measures, the JPEG quality read from files, and a generator told how
hard to work (quality-aware), with its quality from the caller, the file, or its estimator."""
import numpy as np
import pytest
import torch
from PIL import Image

from artifact_removal.image_io import ijg_tables, jpeg_quality, load_image, quality_from_tables
from artifact_removal.metrics import chroma_grid, luma_grid
from artifact_removal.models import create_generator
from artifact_removal.restore import Restorer
from artifact_removal.weights import load_generator, save_generator


@pytest.fixture(scope='module')
def live1(data_dir):
    return np.asarray(Image.open(sorted((data_dir / 'test' / 'live1_color').glob('*.png'))[0]).convert('RGB'))


def test_grid_measures_see_the_jpeg_grid(live1):
    "On a LIVE1 image: the clean one scores about 1, its q10 JPEG above 1.5 (luma, 8 px) and far above (chroma, 16 px)."
    from artifact_removal.evaluate import opencv_jpeg
    jpeg = opencv_jpeg(live1[..., ::-1], 10)[..., ::-1]
    assert 0.9 < luma_grid(live1) < 1.1 and 0.9 < chroma_grid(live1) < 1.2
    assert luma_grid(jpeg) > 1.5 and chroma_grid(jpeg) > 3
    assert luma_grid(live1[..., 0]) == pytest.approx(luma_grid(np.repeat(live1[..., :1], 3, 2)), rel=0.01)
    assert chroma_grid(live1[..., 0]) is None  # gray has no chroma


@pytest.mark.parametrize('quality', [10, 50, 90])
def test_quality_read_from_pillow_jpegs(live1, tmp_path, quality):
    Image.fromarray(live1).save(tmp_path / 'a.jpg', quality=quality)
    with Image.open(tmp_path / 'a.jpg') as im: assert abs(jpeg_quality(im) - quality) <= 5
    assert abs(load_image(tmp_path / 'a.jpg').info['jpeg_quality'] - quality) <= 5  # kept through decoding
    Image.fromarray(live1[..., 0]).save(tmp_path / 'g.jpg', quality=quality)  # gray: the luma table alone
    with Image.open(tmp_path / 'g.jpg') as im: assert abs(jpeg_quality(im) - quality) <= 5
    Image.fromarray(live1).save(tmp_path / 'a.png')
    with Image.open(tmp_path / 'a.png') as im: assert jpeg_quality(im) is None


def test_quality_of_other_encoders_tables_is_the_nearest():
    "Tables libjpeg never writes (a camera's, here the q40 ones scaled by 1.1) map to the libjpeg quality nearest."
    tables = {k: list(np.clip(np.round(t * 1.1), 1, 255).astype(int)) for k, t in enumerate(ijg_tables(40))}
    assert 33 <= quality_from_tables(tables) <= 40


class QualitySpy(torch.nn.Module):
    "A quality-aware stand-in that records the quality it is told and returns its input."
    quality_aware = True
    def __init__(self):
        super().__init__()
        self.seen, self.w = [], torch.nn.Parameter(torch.zeros(1))
    def forward(self, x, quality=None):
        self.seen.append(torch.as_tensor(quality).flatten().tolist())
        return x
    def estimate_quality(self, x): return torch.full((len(x),), 42.)


def test_quality_comes_from_the_caller_the_file_or_the_estimate(live1, tmp_path):
    spy = QualitySpy()
    r = Restorer(spy, device='cpu', backend='torch', tile=0)
    crop = live1[:64, :96]
    r.restore_array(crop); r.restore_array(crop, quality=15)
    assert spy.seen == [[42.0], [15.0]]  # estimated, then the override
    Image.fromarray(crop).save(tmp_path / 'a.jpg', quality=30)
    spy.seen.clear()
    r(tmp_path / 'a.jpg'); r(tmp_path / 'a.jpg', quality=12)
    assert spy.seen == [[30.0], [12.0]]  # the file's own tables, then the override
    spy.seen.clear()
    r.restore_tensor(torch.rand(2, 3, 32, 32), quality=20)
    assert spy.seen == [[20.0, 20.0]]
    with pytest.raises(ValueError, match='1..100'): r.restore_array(crop, quality=0)


def test_quality_aware_generator_is_conditioned():
    "FiLM starts as the identity (blind weights load unchanged); once trained, the quality changes the output."
    g = create_generator('mobilenetv3_small_100').eval()
    with torch.no_grad():
        for p in g.body.parameters(): p.add_(torch.randn_like(p) * 0.01)
    x = torch.rand(2, 3, 40, 56)
    with torch.no_grad():
        assert torch.equal(g(x, quality=10), g(x, quality=95))
        torch.nn.init.normal_(g.film.mlp[-1].weight, std=0.1)
        assert not torch.allclose(g(x, quality=10), g(x, quality=95))
        per_image = g(x, quality=torch.tensor([10., 95.]))
        assert torch.allclose(per_image[0], g(x[:1], quality=10)[0], atol=1e-5)
        assert torch.allclose(per_image[1], g(x[1:], quality=95)[0], atol=1e-5)
        assert g.estimate_quality(x).shape == (2,) and g(x).shape == x.shape  # estimated when not given


def test_old_and_wrong_weights_files(tmp_path):
    "A blind weights file under its old architecture name loads; a file that does not fit names itself."
    blind = create_generator('mobilenetv3_small_100', quality_aware=False)
    path = save_generator(blind, tmp_path / 'old.safetensors', 'mobilenetv3_small_100_fixedbn')
    g = load_generator(path)
    assert not g.quality_aware and Restorer(path, device='cpu', backend='torch').quality_aware is False
    from safetensors.torch import save_file
    save_file({'nope': torch.zeros(1)}, str(tmp_path / 'wrong.safetensors'), metadata={'arch': 'mobilenetv3_small_100'})
    with pytest.raises(ValueError, match='wrong.safetensors: the weights do not fit'):
        load_generator(tmp_path / 'wrong.safetensors')


def test_validation_scorer_measures_what_people_see(data_dir):
    "Input scores for the gains' reference; an identity model gains nothing, shifts no colour and keeps the grid."
    from artifact_removal.evaluate import ValidationScorer

    class Identity(torch.nn.Module):
        def __init__(self): super().__init__(); self.w = torch.nn.Parameter(torch.zeros(1))
        def forward(self, x): return x

    scorer = ValidationScorer(data_dir / 'valid', n_images=2, crop=64, smooth=data_dir / 'smooth' / 'valid',
                              smooth_crop=64, stlpips=False)
    base, same = scorer(None), scorer(Identity())
    assert base['luma_grid'] > 1.3 and base['chroma_grid'] > 1.5
    assert same['psnr'] == base['psnr'] and same['q95_gain'] == 0 and same['smooth_q75_gain'] == 0
    assert same['smooth_shift'] < 0.5 and same['luma_grid'] == base['luma_grid']


def test_quality_reading_loss_is_the_l1_or_leans_high():
    """At quantile 0.5 the estimator's L1 on quality/100; at 0.8, for a label of q60, a reading 10 too low costs 4
    times one 10 too high; for a label of q10 (below the ramp) both cost the same."""
    import torch.nn.functional as F
    from artifact_removal.losses import quality_reading_loss
    est, truth = torch.tensor([50., 90., 20.]), torch.tensor([60., 80., 20.])
    assert torch.isclose(quality_reading_loss(est, truth), F.l1_loss(est / 100, truth / 100))
    for label, ratio in ((60., 4.), (10., 1.)):
        low, high = (quality_reading_loss(torch.tensor([label + d]), torch.tensor([label]), 0.8) for d in (-10., 10.))
        assert torch.isclose(low, ratio * high) and torch.isclose(low + high, torch.tensor(0.2))


@pytest.mark.parametrize('p_estimated', [0.0, 1.0])
def test_conditioning_tells_some_samples_a_lower_quality(p_estimated):
    """`p_underread` tells a share of the samples between half and all of their quality (of the label, or of the
    estimate), so the generator learns not to trust a low reading blindly; the estimator still learns the label."""
    from types import SimpleNamespace
    from artifact_removal.callbacks import QualityConditioning
    torch.manual_seed(0)
    g = create_generator('mobilenetv3_small_100').train()
    x, label = torch.rand(64, 3, 32, 32), torch.full((64,), 90.)
    told = {}
    for p in (0.0, 0.5):
        cb = QualityConditioning(p_estimated=p_estimated, p_underread=p)
        cb.learn = SimpleNamespace(model=g, training=True, xb=(x, label))
        cb.before_batch()
        told[p] = cb.learn.xb[1]
        assert torch.equal(cb.label, label) and cb.estimate.shape == (64,)
    plain = cb.estimate.detach() if p_estimated else label
    assert torch.equal(told[0.0], plain)
    lowered = told[0.5] < plain
    assert 0.3 < lowered.float().mean() < 0.7 and torch.all(told[0.5][lowered] >= plain[lowered] / 2)

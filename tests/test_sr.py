"""Super-resolution x2: the generator's sizes, tiles, the training pairs' alignment, the SR evaluation protocol, and
scale through restore, video, ONNX and the command line."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from artifact_removal.config import NoGANConfig
from artifact_removal.degrade import DOWNSCALE_KERNELS, JPEGDegradation, SRDegradation, downscale
from artifact_removal.evaluate import ValidationScorer, evaluate, upscale
from artifact_removal.metrics import psnr
from artifact_removal.models import create_generator
from artifact_removal.restore import Restorer
from artifact_removal.tiling import run_tiled

ARCH = 'mobilenetv3_small_100_sr2'


def _perturbed(seed=0, quality_aware=False):
    "An x2 generator whose head is not zero (a new one only upscales), so tests see what the network does."
    torch.manual_seed(seed)
    g = create_generator(ARCH, quality_aware=quality_aware).eval()
    with torch.no_grad():
        for p in g.head.parameters(): p.add_(torch.randn_like(p) * 0.05)
    return g


@pytest.fixture(scope='module')
def sr_restorer():
    return Restorer(_perturbed(), device='cpu', backend='torch')


def _smooth(w, h, seed=0):
    "A smooth synthetic image: low-frequency sinusoids, nothing that downscaling loses."
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w] / 24
    a = 0.5 + 0.2 * np.sin(rng.uniform(0.5, 1.5, 3) * xx[..., None] + rng.uniform(0.5, 1.5, 3) * yy[..., None]
                           + rng.uniform(0, 6, 3)) + 0.15 * np.cos(0.7 * xx - 0.4 * yy)[..., None]
    return Image.fromarray((a.clip(0, 1) * 255).round().astype(np.uint8))


def test_new_generator_is_the_bicubic_upscale():
    g = create_generator(ARCH).eval()
    assert g.scale == 2
    for shape in [(1, 3, 37, 53), (2, 1, 64, 64)]:
        x = torch.rand(*shape)
        with torch.no_grad(): y = g(x, quality=50)
        up = F.interpolate(x, scale_factor=2, mode='bicubic', align_corners=False)
        assert y.shape == (shape[0], shape[1], 2 * shape[2], 2 * shape[3]) and torch.allclose(y, up, atol=1e-6)


@pytest.mark.parametrize('shape,dtype', [((37, 53, 3), np.uint8), ((33, 47), np.uint8), ((31, 40, 1), np.uint16),
                                         ((29, 45, 2), np.uint8), ((35, 41, 4), np.uint16), ((32, 39, 4), np.float32)])
def test_sizes_gray_alpha_bit_depth(sr_restorer, shape, dtype):
    "Odd sizes, gray, gray+alpha, RGBA, 16-bit and float: twice the height and width, the rest as it came."
    rng = np.random.default_rng(0)
    a = rng.random(shape)
    a = a.astype(dtype) if dtype == np.float32 else (a * np.iinfo(dtype).max).astype(dtype)
    out = sr_restorer.restore_array(a)
    assert out.shape == (2 * shape[0], 2 * shape[1], *shape[2:]) and out.dtype == dtype
    if len(shape) == 3 and shape[2] in (2, 4):  # alpha: the bicubic upscale of the input's, not the model's doing
        up = F.interpolate(torch.from_numpy(a[..., -1].astype(np.float32))[None, None], scale_factor=2, mode='bicubic',
                           align_corners=False)[0, 0].numpy()
        top = np.iinfo(dtype).max if dtype != np.float32 else 1
        assert np.abs(out[..., -1].astype(np.float64) - np.clip(up, 0, top)).max() <= top / 255


def test_strength_blends_from_the_bicubic_upscale(sr_restorer):
    a = np.array(_smooth(40, 30))
    base = sr_restorer.restore_array(a, strength=0.0)
    up = F.interpolate(torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255, scale_factor=2, mode='bicubic',
                       align_corners=False)
    assert np.abs(base.astype(int) - (up[0].permute(1, 2, 0).clamp(0, 1) * 255).round().numpy()).max() <= 1
    full, half = sr_restorer.restore_array(a), sr_restorer.restore_array(a, strength=0.5)
    assert np.abs(full.astype(int) - base).max() > 3
    assert np.abs(half.astype(float) - (full.astype(float) + base) / 2).max() <= 1


def test_tiled_matches_whole_at_scale_2():
    "Tiles of the input's grid, outputs pasted at twice their place: within 1/255 of the whole image."
    r = Restorer(_perturbed(1), device='cpu', backend='torch', context=192)
    a = (np.random.default_rng(1).random((230, 301, 3)) * 255).astype(np.uint8)
    whole, tiled = r.restore_array(a, tile=0, quality=40), r.restore_array(a, tile=64, quality=40)
    assert whole.shape == tiled.shape == (460, 602, 3)
    assert np.abs(whole.astype(int) - tiled).max() <= 1
    assert np.abs(whole.astype(int) - upscale(a, 2)).mean() > 1  # the network does something


def test_run_tiled_scale_with_a_pixel_shuffle():
    "run_tiled on its own: a local x2 map (conv, then pixel shuffle) tiled equals it whole."
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 12, 3, padding=1)
    fn = lambda x: F.pixel_shuffle(conv(x), 2).sigmoid()
    a = np.random.default_rng(2).random((64, 96, 3)).astype(np.float32)  # on the grid: fn pads nothing either
    whole, tiled = run_tiled(fn, a, tile=0, scale=2), run_tiled(fn, a, tile=32, context=32, scale=2)
    assert whole.shape == tiled.shape == (128, 192, 3) and np.abs(whole - tiled).max() < 1e-5


@pytest.mark.parametrize('kernel', DOWNSCALE_KERNELS)
def test_downscale_keeps_the_grid(kernel):
    """The low-resolution grid is the high-resolution one halved, with no shift: on a smooth image the bicubic upscale
    of the downscale comes back close, and closer than with the image moved by one pixel either way first."""
    hr = _smooth(160, 128)
    score = lambda img: psnr(np.asarray(hr)[8:-8, 8:-8], upscale(np.asarray(downscale(img, 2, kernel, 0.8)), 2)[8:-8, 8:-8])
    aligned = score(hr)
    a = np.asarray(hr)
    for shift in (1, -1):
        moved = Image.fromarray(np.roll(a, shift, axis=(0, 1)))
        assert aligned > score(moved) + 3, (kernel, shift)
    assert aligned > 38


def test_sr_degradation_seeded_and_labelled():
    img = _smooth(128, 96)
    deg = SRDegradation(2)
    a, qa = deg(img, np.random.default_rng(5))
    b, qb = deg(img, np.random.default_rng(5))
    assert a.size == (64, 48) and np.array_equal(np.asarray(a), np.asarray(b)) and qa == qb
    clean = SRDegradation(2, jpeg=JPEGDegradation(p_clean=1.0))
    assert clean(img, np.random.default_rng(0))[1] == 100
    labels = {deg(img, np.random.default_rng(s))[1] for s in range(40)}
    assert 100 in labels and min(labels) < 50  # clean and compressed inputs both occur
    with pytest.raises(ValueError, match='multiples of 2'): downscale(_smooth(33, 32), 2)


def test_pair_dls_sr_pairs_aligned_and_shown(mini_train, mini_valid, tmp_path):
    from artifact_removal.data import get_pair_dls
    deg = SRDegradation(2, jpeg=JPEGDegradation(p_clean=1.0))  # clean inputs: alignment is all that differs
    dls = get_pair_dls(mini_train, mini_valid, size=64, bs=8, n_patches=2, degradation=deg, seed=0, num_workers=0, p_gray=0)
    x, q, y = dls.one_batch()
    assert x.shape == (8, 3, 32, 32) and y.shape == (8, 3, 64, 64) and (q == 100).all()
    up = F.interpolate(x.float(), scale_factor=2, mode='bicubic', align_corners=False).clamp(0, 1)
    err = lambda dy, dx: ((up[..., 4:-4, 4:-4] - torch.roll(y.float(), (dy, dx), (2, 3))[..., 4:-4, 4:-4]) ** 2).mean()
    assert all(err(0, 0) < 0.8 * err(dy, dx) for dy, dx in ((1, 0), (0, 1), (-1, 0), (0, -1)))
    vx, _, vy = dls.valid.one_batch()
    assert vx.shape[-1] * 2 == vy.shape[-1] == 128
    dls.show_batch(max_n=2)
    import matplotlib.pyplot as plt
    plt.savefig(tmp_path / 'batch.png'); plt.close('all')
    with pytest.raises(ValueError, match='multiple of the scale'):
        get_pair_dls(mini_train, mini_valid, size=63, degradation=deg)


def test_config_needs_an_sr_arch():
    NoGANConfig(arch=ARCH, scale=2)
    with pytest.raises(ValueError, match='mobilenetv3_small_100_sr2'): NoGANConfig(scale=2)
    with pytest.raises(ValueError, match='x2 outputs'): NoGANConfig(arch=ARCH)
    assert isinstance(NoGANConfig(arch=ARCH, scale=2).degradation(), SRDegradation)


def test_init_from_artifact_removal_weights(tmp_path):
    "Artifact-removal weights start an x2 generator: all but its last U-Net conv and head, which starts at zero."
    from artifact_removal.learner import load_init
    from artifact_removal.weights import save_generator
    ar = create_generator('mobilenetv3_small_100')
    with torch.no_grad():
        for p in ar.parameters(): p.add_(0.01)
    path = save_generator(ar, tmp_path / 'ar.safetensors', 'mobilenetv3_small_100', half=False)
    sr = load_init(create_generator(ARCH), path)
    mine, theirs = sr.state_dict(), ar.state_dict()
    different = [k for k in theirs if not (mine[k].shape == theirs[k].shape and torch.equal(mine[k], theirs[k]))]
    assert different == ['body.layers.12.0.weight', 'body.layers.12.0.bias']  # the U-Net's last conv: 3 outputs there
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad(): y = sr.eval()(x, quality=50)
    assert torch.allclose(y, F.interpolate(x, scale_factor=2, mode='bicubic', align_corners=False), atol=1e-6)
    with pytest.raises(ValueError, match='do not fit'): load_init(create_generator('plain_cnn'), path)


def test_validation_scorer_sr(mini_valid):
    s = ValidationScorer(mini_valid, 2, 64, low=30, high=95, stlpips=False, scale=2)
    base = s(None)
    assert {'psnr', 'psnr_clean', 'q95', 'clean'} <= set(base) and base['psnr_clean'] > base['psnr']
    row = s(create_generator(ARCH))  # a new generator is PyTorch's bicubic: close to Pillow's
    assert abs(row['psnr_clean'] - base['psnr_clean']) < 1 and abs(row['clean_gain']) < 1
    assert 'quality_error' in row and 'psnr_told_quality' in row


def _bicubic_rows(folder, qualities):
    ev = evaluate([], folder, qualities, metrics=('psnr',), scale=2, restore_first=(), progress=False, crops=0)
    return {r['quality']: r['psnr'] for r in ev.summary}


def test_sr_protocol_reproduces_the_bicubic_reference(shared_data):
    "../shared/data/README.md: bicubic x2 Set5 33.67 / Set14 30.32 dB; the input at q30 first: 29.78 / 27.57."
    for name, ref in (('set5', {'clean': 33.67, 30: 29.78}), ('set14', {'clean': 30.32, 30: 27.57})):
        got = _bicubic_rows(shared_data / 'test' / name, ('clean', 30))
        for q, dB in ref.items(): assert abs(got[q] - dB) <= 0.05, (name, q, got[q])


def test_evaluate_sr_rows_files_and_checks(tmp_path, mini_valid):
    imgs = tmp_path / 'imgs'
    imgs.mkdir()
    for i, f in enumerate(sorted(mini_valid.iterdir())[:2]):
        Image.open(f).convert('RGB').crop((0, 0, 97, 75)).save(imgs / f'{i}.png')  # odd: cropped to even first
    ar = Restorer(create_generator('mobilenetv3_small_100'), device='cpu')
    ar.name = 'restorer'
    sr = Restorer(create_generator(ARCH), device='cpu')
    ev = evaluate(sr, imgs, ('clean', 30), device='cpu', progress=False, scale=2, restore_first=[ar], out=tmp_path / 'o')
    models = [r['model'] for r in ev.summary]
    assert models == ['bicubic', 'restorer + bicubic', 'RestorationNet'] * 2
    bic = {r['quality']: r for r in ev.summary if r['model'] == 'bicubic'}
    same = {r['quality']: r for r in ev.summary if r['model'] == 'restorer + bicubic'}  # an identity restorer
    assert abs(bic[30]['psnr'] - same[30]['psnr']) < 1e-9 and bic['clean']['psnr'] > bic[30]['psnr']
    assert {'psnr', 'ssim', 'stlpips', 'luma_grid', 'chroma_grid'} <= set(bic['clean'])
    assert 'PSNR-Y' in ev.markdown() and '| clean |' in ev.markdown()
    assert {p.name for p in (tmp_path / 'o').iterdir()} >= {'summary.md', 'per_image.csv', 'crops.png'}
    assert ev.crops[0][0].shape == ev.crops[0][-1].shape  # the input shown at the output's size
    with pytest.raises(ValueError, match='x1'): evaluate(ar, imgs, scale=2, restore_first=(), progress=False)
    with pytest.raises(ValueError, match='artifact-removal'): evaluate(sr, imgs, scale=2, restore_first=[sr], progress=False)


def test_onnx_export_at_scale_2(tmp_path):
    from artifact_removal.export import export_onnx
    import onnxruntime as ort
    g = _perturbed(quality_aware=True)
    path = export_onnx(g, tmp_path / 'sr.onnx')  # checked against PyTorch on two sizes, one odd
    sess = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    x = np.random.default_rng(0).random((1, 3, 45, 61), np.float32)
    y = sess.run(None, {'image': x, 'quality': np.array([[30.]], np.float32)})[0]
    with torch.no_grad(): ref = g(torch.from_numpy(x), quality=30.).clamp(0, 1).numpy()
    assert y.shape == (1, 3, 90, 122) and np.abs(y - ref).max() < 1e-3
    r = Restorer(g, device='cpu', backend='onnx')  # the Restorer's onnxruntime path
    a = (x[0].transpose(1, 2, 0) * 255).astype(np.uint8)
    assert r.restore_array(a, quality=30).shape == (90, 122, 3)


def test_restore_file_keeps_exif_and_icc(tmp_path, sr_restorer):
    from PIL import ImageCms
    img = _smooth(50, 36)
    exif = Image.Exif()
    exif[0x010E] = 'a description'
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile('sRGB')).tobytes()
    img.save(tmp_path / 'in.jpg', quality=40, exif=exif, icc_profile=icc)
    out = sr_restorer(str(tmp_path / 'in.jpg'), out=tmp_path / 'out.png')
    assert out.size == (100, 72)
    with Image.open(tmp_path / 'out.png') as saved:
        assert saved.size == (100, 72) and saved.info.get('icc_profile') == icc
        assert saved.getexif().get(0x010E) == 'a description'


def test_scale_is_checked_and_default_resolved(sr_restorer):
    from artifact_removal import registry
    from artifact_removal.weights import default_model_for
    assert default_model_for(1) == registry.default_model()
    if 'sr2' in registry.list_models(): assert default_model_for(2) == 'sr2'
    with pytest.raises(ValueError, match='x3'): default_model_for(3)
    with pytest.raises(ValueError, match='not x1'): Restorer(_perturbed(), device='cpu', scale=1)
    with pytest.raises(ValueError, match='not x2'):
        Restorer(create_generator('mobilenetv3_small_100'), device='cpu', scale=2)
    t = torch.rand(2, 3, 20, 24)
    assert sr_restorer.restore_tensor(t).shape == (2, 3, 40, 48)


@pytest.mark.slow
def test_video_at_scale_2(tmp_path):
    "A clip twice as large, its frame count, timing and sound kept."
    pytest.importorskip('av')
    from test_video import audio_packets, decoded, make_clip
    from artifact_removal.video import restore_video, video_info
    src = make_clip(tmp_path / 'in.mp4', w=48, h=32, n=6)
    r = Restorer(create_generator(ARCH), device='cpu', batch_size=3)
    dst = restore_video(src, tmp_path / 'out.mp4', model=r, progress=False, scale=2)
    a, b = video_info(src), video_info(dst)
    assert (b['width'], b['height']) == (96, 64) and b['frames'] == a['frames'] == 6 and b['fps'] == a['fps']
    assert decoded(src)[0] == decoded(dst)[0] and audio_packets(src) == audio_packets(dst)
    with pytest.raises(ValueError, match='not x1'): restore_video(src, tmp_path / 'x.mp4', model=r, scale=1)


def test_cli_restore_and_eval_at_scale_2(tmp_path, capsys):
    from artifact_removal.cli import main
    from artifact_removal.weights import save_generator
    weights = save_generator(_perturbed(), tmp_path / 'sr.safetensors', ARCH)
    _smooth(41, 30).save(tmp_path / 'a.jpg', quality=30)
    assert main(['restore', str(tmp_path / 'a.jpg'), '--model', str(weights), '--scale', '2', '-o',
                 str(tmp_path / 'a.png')]) == 0
    assert Image.open(tmp_path / 'a.png').size == (82, 60)
    assert main(['restore', str(tmp_path / 'a.jpg'), '--model', str(weights), '--scale', '1']) == 2
    assert 'not x1' in capsys.readouterr().err
    (tmp_path / 'set').mkdir()
    _smooth(64, 48).save(tmp_path / 'set' / 'x.png')
    assert main(['eval', '--data', str(tmp_path / 'set'), '--scale', '2', '--model', str(weights), '--restore-model',
                 str(weights), '--quality', 'clean', '30']) == 2  # an x2 model cannot restore first
    assert main(['eval', '--data', str(tmp_path / 'set'), '--scale', '2', '--model', str(weights), '--quality', 'clean',
                 '30', '--restore-model', 'fidelity']) == 0
    out = capsys.readouterr().out
    assert '| bicubic | clean |' in out and 'fidelity + bicubic' in out

"""restore_image / Restorer with the bundled default model: every input kind, what must survive, bad files."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

from artifact_removal import Restorer, restore_image
from artifact_removal.image_io import ImageReadError
from artifact_removal.models import create_generator
from artifact_removal.restore import get_restorer


@pytest.fixture(scope='module')
def photo(data_dir):
    "A 96x128 crop of a validation image, JPEG-compressed at q20."
    im = Image.open(sorted((data_dir / 'valid').glob('*.jpg'))[0]).convert('RGB').crop((100, 100, 228, 196))
    buf = io.BytesIO(); im.save(buf, 'JPEG', quality=20)
    return Image.open(buf).convert('RGB')


@pytest.fixture(scope='module')
def restorer(): return get_restorer()


def test_path_gives_pil_and_changes_the_image(photo, tmp_path):
    src = tmp_path / 'a.jpg'; photo.save(src, quality=20)
    out = restore_image(src)
    assert isinstance(out, Image.Image) and out.size == photo.size and out.mode == 'RGB'
    assert np.abs(np.asarray(out, np.int16) - np.asarray(photo)).mean() > 0.01  # not the identity


def test_every_kind_comes_back_as_itself(photo, restorer):
    a = np.array(photo)  # writable, as torch.from_numpy wants below
    assert restorer(photo.convert('L')).mode == 'L'
    gray = restore_image(a[..., 0])
    assert gray.shape == a.shape[:2] and gray.dtype == np.uint8
    f = restore_image(a / 255.0)
    assert f.dtype == np.float64 and f.shape == a.shape and 0 <= f.min() and f.max() <= 1
    a16 = a.astype(np.uint16) * 257
    r16 = restore_image(a16)
    assert r16.dtype == np.uint16 and np.abs(r16.astype(int) // 257 - restore_image(a)).max() <= 1
    t = torch.from_numpy(a).permute(2, 0, 1).float() / 255
    assert restore_image(t).shape == t.shape and restore_image(t[None].repeat(2, 1, 1, 1)).shape == (2, *t.shape)
    assert restore_image(torch.from_numpy(a).permute(2, 0, 1)).dtype == torch.uint8


def test_alpha_is_untouched_and_strength_blends(photo):
    a = np.asarray(photo)
    alpha = np.random.default_rng(0).integers(0, 256, a.shape[:2], dtype=np.uint8)
    out = restore_image(Image.fromarray(np.dstack([a, alpha]), 'RGBA'))
    assert out.mode == 'RGBA' and np.array_equal(np.asarray(out)[..., 3], alpha)
    assert np.array_equal(restore_image(a, strength=0), a)
    full, half = restore_image(a).astype(float), restore_image(a, strength=0.5).astype(float)
    inside = (full > 0) & (full < 255)  # where the full restoration was not clipped to the range
    assert np.abs(half - (a + full) / 2)[inside].max() <= 1


def test_sixteen_bit_gray_png_round_trip(photo, tmp_path):
    a = np.asarray(photo.convert('L')).astype(np.uint16) * 257
    src, dst = tmp_path / 'g16.png', tmp_path / 'out.png'
    Image.fromarray(a).save(src)
    out = restore_image(src, out=dst)
    assert out.mode == 'I;16' and np.asarray(Image.open(dst)).dtype == np.uint16


def test_exif_orientation_applied_and_metadata_kept(photo, tmp_path):
    exif = Image.Exif(); exif[0x0112] = 6; exif[0x010F] = 'TestCam'  # rotate 90 on display; camera make
    icc = b'fake-icc-profile-bytes'
    src = tmp_path / 'rot.jpg'
    photo.save(src, quality=90, exif=exif, icc_profile=icc)
    out = restore_image(src, out=tmp_path / 'rot_out.jpg')
    assert out.size == (photo.height, photo.width)  # the orientation was applied
    saved = Image.open(tmp_path / 'rot_out.jpg')
    assert saved.info.get('icc_profile') == icc and saved.getexif().get(0x010F) == 'TestCam'
    assert saved.getexif().get(0x0112, 1) == 1 and saved.size == out.size


def test_tiles_match_the_whole_image(data_dir, restorer):
    im = Image.open(sorted((data_dir / 'train').glob('sunhays_*'))[-1]).convert('RGB').crop((0, 0, 520, 390))
    buf = io.BytesIO(); im.save(buf, 'JPEG', quality=10)
    a = np.asarray(Image.open(buf))
    whole, tiled = restorer.restore_array(a, tile=0), restorer.restore_array(a, tile=128)
    assert np.abs(whole.astype(int) - tiled).max() <= 1


def test_folder_in_folder_out_never_overwrites_inputs(photo, tmp_path):
    (tmp_path / 'in' / 'sub').mkdir(parents=True)
    photo.save(tmp_path / 'in' / 'a.jpg'); photo.save(tmp_path / 'in' / 'sub' / 'b.png')
    outs = restore_image(tmp_path / 'in', out_dir=tmp_path / 'out')
    assert sorted(p.relative_to(tmp_path / 'out').as_posix() for p in outs) == ['a.png', 'sub/b.png']
    src = tmp_path / 'in' / 'a.jpg'
    before = src.read_bytes()
    with pytest.raises(ValueError, match='refusing to overwrite the input'): restore_image(src, out=src)
    assert src.read_bytes() == before
    restore_image(tmp_path / 'in', out_dir=tmp_path / 'in', ext='auto', overwrite=True)
    assert src.read_bytes() != before


def test_failed_save_leaves_nothing(photo, tmp_path):
    rgba = Image.fromarray(np.dstack([np.asarray(photo), np.full(photo.size[::-1], 255, np.uint8)]), 'RGBA')
    src = tmp_path / 'in.png'; rgba.save(src)
    with pytest.raises(ValueError, match='JPEG cannot store'): restore_image(src, out=tmp_path / 'out' / 'x.jpg')
    assert not list((tmp_path / 'out').glob('*'))


def _bad_files(folder, photo):
    (folder / 'empty.jpg').write_bytes(b'')
    buf = io.BytesIO(); photo.save(buf, 'JPEG'); (folder / 'truncated.jpg').write_bytes(buf.getvalue()[:600])
    (folder / 'notes.png').write_text('not an image at all')
    frames = [photo.convert('P'), photo.rotate(90).convert('P')]
    frames[0].save(folder / 'anim.gif', save_all=True, append_images=frames[1:])
    return {'empty.jpg': 'empty file', 'truncated.jpg': 'not a readable image', 'notes.png': 'not a readable image',
            'anim.gif': 'animated image'}


def test_bad_files_name_the_file_and_the_problem(photo, tmp_path):
    for name, why in _bad_files(tmp_path, photo).items():
        with pytest.raises(ImageReadError, match=why) as e: restore_image(tmp_path / name)
        assert str(tmp_path / name) in str(e.value)


def test_decompression_bomb_is_refused(photo, tmp_path, monkeypatch):
    photo.save(tmp_path / 'big.png')
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 100)
    with pytest.raises(ImageReadError, match='big.png.*MAX_IMAGE_PIXELS'): restore_image(tmp_path / 'big.png')


def test_unusual_modes_give_sensible_results(photo, tmp_path):
    photo.convert('CMYK').save(tmp_path / 'cmyk.jpg')
    assert restore_image(tmp_path / 'cmyk.jpg').mode == 'RGB'
    photo.convert('P').save(tmp_path / 'pal.png')
    assert restore_image(tmp_path / 'pal.png').mode == 'RGB'
    p = photo.convert('P'); p.info['transparency'] = 0; p.save(tmp_path / 'pal_t.png', transparency=0)
    assert restore_image(tmp_path / 'pal_t.png').mode == 'RGBA'
    Image.new('RGB', (1, 1), (200, 10, 10)).save(tmp_path / 'dot.png')
    assert restore_image(tmp_path / 'dot.png').size == (1, 1)


def test_folder_skips_bad_files_when_asked(photo, tmp_path):
    _bad_files(tmp_path, photo); photo.save(tmp_path / 'good.jpg')
    r = Restorer()
    with pytest.warns(UserWarning) as caught:
        outs = r(tmp_path, out_dir=tmp_path / 'out', on_error='skip')
    assert [p.name for p in outs] == ['good.png'] and len(caught) == 4
    done, errors = r.restore_files(sorted(tmp_path.glob('*.*')), tmp_path / 'out2', tmp_path, on_error='skip')
    assert len(done) == 1 and len(errors) == 4 and all(str(f) in msg for f, msg in errors)
    assert not hasattr(r, 'errors')  # nothing about a call is kept on the shared restorer


def test_visualizer(photo, tmp_path, restorer):
    src = tmp_path / 'a.jpg'; photo.save(src, quality=20)
    fig = restorer.plot_transformed_image(src)
    assert len(fig.axes) == 4
    assert restorer.get_transformed_image(src).size == photo.size
    restorer.plot_transformed_image(src, compare=False, save=tmp_path / 'fig.png')
    assert (tmp_path / 'fig.png').stat().st_size > 0


def test_validation_curves_of_two_runs(tmp_path):
    from artifact_removal.visualize import plot_validation_curve
    log = lambda p0: [{'epoch': e, 'seconds': 60. * e, 'psnr': p0 + e / 10, 'stlpips': .1} for e in (1, 2, 3)]
    runs = {'unet': log(25), 'plain': log(26)}
    psnr_panel = plot_validation_curve(runs, input_scores={'psnr': 25.}, x='epoch').axes[0]
    assert [l.get_label() for l in psnr_panel.get_lines()] == ['unet', 'plain', 'JPEG input']
    assert list(psnr_panel.get_lines()[1].get_xdata()) == [1, 2, 3]
    assert plot_validation_curve(runs, tmp_path / 'c.png').stat().st_size > 0
    with_q95 = [{**r, 'q95_gain': -0.5} for r in log(25)]  # the q95 panel shows harm below its zero line
    q95_panel = plot_validation_curve(with_q95).axes[2]
    assert q95_panel.get_lines()[1].get_ydata()[0] == 0 and 'q95' in q95_panel.get_title()


def test_onnx_and_torch_backends_agree(photo):
    a = np.asarray(photo)
    on, pt = Restorer(device='cpu', backend='onnx'), Restorer(device='cpu', backend='torch', precision='fp32')
    assert on.backend == 'onnx' and pt.backend == 'torch'
    for x in (a, a[..., 1]):
        assert np.abs(on.restore_array(x).astype(int) - pt.restore_array(x)).max() <= 1
    with pytest.raises(ValueError, match='backend'): Restorer(backend='tensorrt')


def test_memory_budget_counts_the_page_cache_as_available(monkeypatch):
    """A machine up for a while keeps most of its RAM as page cache: free pages are few, available memory is
    plenty. The budget follows what is available, so a 1080p frame still runs whole."""
    from collections import namedtuple
    import artifact_removal.restore as restore_module
    Memory = namedtuple('Memory', 'total available free')
    monkeypatch.setattr(restore_module.psutil, 'virtual_memory', lambda: Memory(24 << 30, 16 << 30, 256 << 20))
    monkeypatch.setattr(restore_module.os, 'sysconf', lambda name: {'SC_AVPHYS_PAGES': 65536}.get(name, 4096))
    r = Restorer(create_generator('mobilenetv3_small_100'), device='cpu', backend='torch')
    assert r.tile_size(1080, 1920) == 0
    monkeypatch.setattr(restore_module.psutil, 'virtual_memory', lambda: Memory(24 << 30, 2 << 30, 256 << 20))
    assert r.tile_size(1080, 1920) > 0  # with little available it tiles


def test_frames_batch_only_as_many_as_the_memory_budget_holds(monkeypatch):
    "Untiled same-size frames run batch_size at a time, fewer where the whole-image budget holds fewer."
    import artifact_removal.restore as restore_module
    r = Restorer(create_generator('mobilenetv3_small_100'), device='cpu', batch_size=4, backend='torch')
    frames = [np.full((64, 96, 3), 40 * i, np.uint8) for i in range(5)]
    one = (64 + 32) * (96 + 32) * r._budgets()[2]
    groups = []
    spy = Restorer._restore_group
    monkeypatch.setattr(Restorer, '_restore_group', lambda self, a, *rest: groups.append(len(a)) or spy(self, a, *rest))
    for budget, expected in [(2.5 * one, [2, 2, 1]), (100 * one, [4, 1]), (one, [1] * 5)]:
        monkeypatch.setattr(restore_module, '_memory_budgets', lambda device, b=budget: (int(b), int(b)))
        groups.clear()
        out = r.restore_arrays(frames)
        assert groups == expected and len(out) == 5
    groups.clear()
    r.restore_arrays(frames, tile=0)  # whole images asked for: batch_size, whatever the budget
    assert groups == [4, 1]

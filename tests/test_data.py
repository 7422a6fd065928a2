import numpy as np
import pytest
import torch
from PIL import Image

from artifact_removal.data import get_pair_dls
from artifact_removal.image_io import ImageReadError


def test_pair_batches(mini_train, mini_valid):
    from artifact_removal.data import patches_per_image
    dls = get_pair_dls(mini_train, mini_valid, size=48, bs=4, n_patches=2, num_workers=0, seed=0)
    x, q, y = dls.one_batch()
    assert x.shape == y.shape == (4, 3, 48, 48) and q.shape == (4,) and dls.n_inp == 2
    assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1 and 0 <= y.min() and y.max() <= 1
    assert ((1 <= q) & (q <= 100)).all()
    assert (x - y).abs().mean() > 0  # the input is damaged, the target is not
    xv, qv, yv = dls.valid.one_batch()
    # five BSDS photos at 2 patches each, the 1024x768 Sun-Hays photo at 2 x sqrt(5.1) = 5
    assert patches_per_image([np.zeros((321, 481)), np.zeros((768, 1024))], 2) == [2, 5]
    assert xv.shape[-1] == 96 and len(dls.train_ds) == 15 and len(dls.valid_ds) == 3
    assert (xv - yv).abs().mean() > 1 / 255  # validation inputs are damaged too...
    assert torch.equal(dls.valid.one_batch()[0], xv)  # ...the same way every epoch


def test_critic_labels_clean_as_real(tmp_path):
    "fastai's GAN losses treat a high critic output as real: clean patches must be class 1."
    from artifact_removal.data import get_critic_dls
    for d in ('generated', 'clean'):
        (tmp_path / d).mkdir()
        for i in range(4): Image.new('RGB', (40, 40), (i * 9, 0, 0)).save(tmp_path / d / f'{i}.png')
    dls = get_critic_dls(tmp_path, size=32, bs=8, num_workers=0, seed=0)
    assert list(dls.vocab) == ['generated', 'clean']
    assert all(int(y) == (parent == 'clean') for (_, y), parent in
               zip(dls.train_ds, [p.parent.name for p in dls.train_ds.items]))


def test_show_batch(mini_train, mini_valid):
    "Pairs side by side: each input titled with the quality it was compressed at, then its target."
    import matplotlib.pyplot as plt
    dls = get_pair_dls(mini_train, mini_valid, size=32, bs=4, n_patches=1, num_workers=0, seed=0)
    _, q, _ = dls.one_batch()
    dls.show_batch(max_n=2)
    titles = [ax.get_title() for ax in plt.gcf().axes]
    assert len(titles) == 4 and titles[1::2] == ['target', 'target'] and all(t.startswith('input q') for t in titles[::2])
    plt.close('all')


def test_empty_folder(tmp_path):
    with pytest.raises(ImageReadError, match=str(tmp_path)): get_pair_dls(tmp_path)


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope'): get_pair_dls(tmp_path / 'nope')


@pytest.mark.parametrize('make, why', [
    (lambda p: p.write_bytes(b''), 'empty file'),
    (lambda p: p.write_bytes(b'this is not a picture'), 'not a readable image'),
    (lambda p: p.write_bytes(open(p.parent.parent / 'good.jpg', 'rb').read()[:3000]), 'not a readable image'),
])
def test_bad_image_named(tmp_path, make, why):
    noise = np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / 'good.jpg', quality=95)  # ~60 kB: cut at 3000 bytes is truncated
    d = tmp_path / 'set'; d.mkdir()
    Image.new('RGB', (200, 200), 'blue').save(d / 'ok.png')
    bad = d / 'bad.jpg'
    make(bad)
    with pytest.raises(ImageReadError, match=f'bad.jpg: {why}'): get_pair_dls(d, valid_pct=0.5)


def test_image_smaller_than_crop(tmp_path):
    Image.new('RGB', (200, 200)).save(tmp_path / 'big.png')
    Image.new('RGB', (40, 300)).save(tmp_path / 'thin.png')
    with pytest.raises(ImageReadError, match=r'thin.png: image is 40x300, smaller than the 128 px crop'):
        get_pair_dls(tmp_path, size=64)

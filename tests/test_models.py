import pytest
import torch

from artifact_removal.models import GENERATOR_CONFIGS, count_params, create_critic, create_generator


@pytest.fixture(scope='module', params=[k for k, v in GENERATOR_CONFIGS.items() if v.get('scale', 1) == 1])  # SR: test_sr
def gen(request): return create_generator(request.param).eval()


@torch.no_grad()
def test_identity_at_init_any_size(gen):
    for shape in [(2, 3, 67, 45), (1, 3, 31, 33), (1, 3, 1, 1)]:
        x = torch.rand(shape)
        y = gen(x)
        assert y.shape == x.shape and (y - x).abs().max() < 1e-6


@torch.no_grad()
def test_gray_input(gen):
    x = torch.rand(1, 1, 50, 70)
    assert gen(x).shape == x.shape


def test_learns_a_correction():
    "After one step the output moves away from the input: the zero-initialised head does not block learning."
    g = create_generator('mobilenetv3_small_100')
    x, y = torch.rand(4, 3, 64, 64), torch.rand(4, 3, 64, 64)
    opt = torch.optim.Adam(g.parameters(), 1e-3)
    for _ in range(2):
        loss = (g(x) - y).abs().mean(); opt.zero_grad(); loss.backward(); opt.step()
    assert (g.eval()(x) - x).abs().mean() > 1e-4


def test_sizes():
    assert 1.0e6 < count_params(create_generator('mobilenetv3_small_100')) < 2.5e6
    assert 3.0e6 < count_params(create_generator('mobilenetv3_large_100')) < 7e6
    with pytest.raises(ValueError, match='unknown generator'): create_generator('resnet9000')


def test_critic_patch_logits():
    c = create_critic()
    assert c(torch.rand(3, 3, 64, 64)).shape == (3, 16)
    assert any('weight_orig' in n for n, _ in c.named_parameters())  # spectral norm


def test_weights_roundtrip_fp16(tmp_path):
    from artifact_removal.weights import load_generator, read_metadata, save_generator
    g = create_generator('mobilenetv3_small_100')
    with torch.no_grad():
        for p in g.parameters(): p.add_(torch.randn_like(p) * 0.01)
    path = save_generator(g, tmp_path / 'w.safetensors', 'mobilenetv3_small_100', recipe={'loss': 'l1'})
    assert read_metadata(path) == {'arch': 'mobilenetv3_small_100', 'recipe': {'loss': 'l1'}}
    x = torch.rand(1, 3, 40, 40)
    assert (load_generator(path)(x) - g.eval()(x)).abs().max() < 2e-3  # fp16 storage
    assert not list(tmp_path.glob('.*.part.*'))  # atomic_path's temporary names
    (tmp_path / 'bad.safetensors').write_bytes(b'junk')
    with pytest.raises(ValueError, match='bad.safetensors: not a weights file'): load_generator(tmp_path / 'bad.safetensors')


def test_fixed_batchnorm_behaves_as_at_test_time():
    """The fixed-BatchNorm config normalises with stored statistics in training too (train output = eval output,
    statistics untouched by a step), and takes the BatchNorm config's weights as they are."""
    bn = create_generator('mobilenetv3_small_100')
    bn.train()(torch.rand(8, 3, 64, 64))  # move BatchNorm statistics away from their initial values
    g = create_generator('mobilenetv3_small_100', fixed_bn=True)
    g.load_state_dict(bn.state_dict())
    with torch.no_grad():
        for p in g.parameters(): p.add_(torch.randn_like(p) * 0.01)  # a head that is not zero
    stats = {k: v.clone() for k, v in g.state_dict().items() if 'running' in k}
    x = torch.rand(2, 3, 64, 64)
    opt = torch.optim.Adam(g.parameters(), 1e-3)
    loss = (g.train()(x) - x.flip(-1)).abs().mean(); opt.zero_grad(); loss.backward(); opt.step()
    assert all(torch.equal(v, g.state_dict()[k]) for k, v in stats.items())
    with torch.no_grad(): assert torch.allclose(g.eval()(x), g.train()(x))
    assert g.training and not any(m.training for m in g.modules() if isinstance(m, torch.nn.BatchNorm2d))
    bn.load_state_dict(g.state_dict())
    with torch.no_grad(): assert torch.allclose(bn.eval()(x), g(x))

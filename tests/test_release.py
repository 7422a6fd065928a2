"""The bundled models earn their place: better than the JPEG input at q10 (the default on ST-LPIPS too),
harmless at q95 (a few images)."""
import pytest
from PIL import Image

pytestmark = pytest.mark.slow  # whole-model runs: CI runs them, the quick command skips them

from artifact_removal.evaluate import blind_check, evaluate


@pytest.fixture(scope='module')
def live1_crops(shared_data, tmp_path_factory):
    "Four LIVE1 color images cropped to 256x256 (the test set: only scored, never trained or chosen on)."
    d = tmp_path_factory.mktemp('live1')
    for f in sorted((shared_data / 'test' / 'live1_color').glob('*.png'))[:4]:
        Image.open(f).convert('RGB').crop((0, 0, 256, 256)).save(d / f.name)
    return d


def test_default_model_beats_the_jpeg_input_at_q10(live1_crops):
    ev = evaluate(['default'], live1_crops, qualities=(10,), progress=False)
    jpeg, model = ev.summary[0], ev.summary[1]
    assert model['psnr'] > jpeg['psnr'] + 0.3
    assert model['stlpips'] < jpeg['stlpips']


def test_fidelity_model_beats_the_jpeg_input_at_q10(live1_crops):
    ev = evaluate(['fidelity'], live1_crops, qualities=(10,), metrics=('psnr',), progress=False)
    assert ev.summary[1]['psnr'] > ev.summary[0]['psnr'] + 0.3


@pytest.mark.parametrize('model', ['default', 'fidelity'])
def test_bundled_models_do_no_harm_at_q95(live1_crops, model):
    check = blind_check(model, live1_crops, qualities=(95,), progress=False)
    assert check.passed, check.markdown()

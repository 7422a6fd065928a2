"""The command line parses every option to the type of its NoGANConfig field."""
from artifact_removal.cli import _parser


def test_train_options_are_typed():
    a = _parser().parse_args(['train', '--data', 'd', '--out', 'o', '--gen-epochs', '3', '--gen-lr', '1e-3',
                              '--quality', '10', '40', '--pretrained', '--gen-loss', 'l1+ssim:0.2'])
    assert a.gen_epochs == 3 and a.gen_lr == 1e-3 and a.quality == [10, 40] and a.pretrained is True
    assert a.gen_loss == 'l1+ssim:0.2' and a.size is None


def _jpeg(data_dir, path, size=(96, 64)):
    from PIL import Image
    Image.open(sorted((data_dir / 'valid').glob('*.jpg'))[0]).convert('RGB').crop((0, 0, *size)).save(path, quality=15)
    return path


def test_restore_command(data_dir, tmp_path, capsys):
    from artifact_removal.cli import main
    src = _jpeg(data_dir, tmp_path / 'a.jpg')
    assert main(['restore', str(src)]) == 0
    assert (tmp_path / 'a_restored.png').exists() and 'a_restored.png' in capsys.readouterr().out
    assert main(['restore', str(src), '-o', str(tmp_path / 'b.tif'), '--strength', '0.5', '--tile', '32']) == 0
    assert (tmp_path / 'b.tif').exists()
    before = src.read_bytes()
    assert main(['restore', str(src), '-o', str(src)]) == 1
    assert 'refusing to overwrite the input' in capsys.readouterr().err and src.read_bytes() == before
    (tmp_path / 'dir').mkdir(); _jpeg(data_dir, tmp_path / 'dir' / 'c.jpg'); (tmp_path / 'dir' / 'bad.jpg').write_bytes(b'')
    assert main(['restore', str(tmp_path / 'dir'), '-o', str(tmp_path / 'out')]) == 1  # one file failed
    err = capsys.readouterr().err
    assert 'bad.jpg: empty file' in err and (tmp_path / 'out' / 'c.png').exists()


def test_models_and_onnx_commands(tmp_path, capsys):
    from artifact_removal import registry
    from artifact_removal.cli import main
    assert main(['models', 'list']) == 0
    assert f'{registry.default_model()} (default)' in capsys.readouterr().out
    assert main(['models', 'download', 'nope']) == 2 and 'unknown model' in capsys.readouterr().err
    assert main(['export-onnx', '-o', str(tmp_path / 'm.onnx')]) == 0
    assert (tmp_path / 'm.onnx').stat().st_size > 1e6 and 'checked against PyTorch' in capsys.readouterr().out
    import numpy as np
    import onnxruntime as ort
    sess = ort.InferenceSession(str(tmp_path / 'm.onnx'))
    x = np.zeros((1, 3, 64, 64), np.float32); x[..., ::2, :] = 1  # stripes of black and white: overshoot at edges
    feed = {'image': x, **({'quality': np.full((1, 1), 10, np.float32)} if len(sess.get_inputs()) > 1 else {})}
    y = sess.run(None, feed)[0]
    assert y.min() >= 0 and y.max() <= 1  # the graph clips, as stored images are


def test_eval_command(data_dir, tmp_path, capsys):
    from PIL import Image
    from artifact_removal.cli import main
    for f in sorted((data_dir / 'test' / 'live1_color').glob('*.png'))[:2]:
        Image.open(f).crop((0, 0, 96, 96)).save(tmp_path / f.name)
    assert main(['eval', '--data', str(tmp_path), '--quality', '10', '--out', str(tmp_path / 'ev')]) == 0
    out = capsys.readouterr().out
    from artifact_removal.registry import default_model
    assert '| jpeg | 10 |' in out and f'| {default_model()} | 10 |' in out
    assert (tmp_path / 'ev' / 'summary.md').exists() and (tmp_path / 'ev' / 'perception_distortion.png').exists()


def test_demo_command(data_dir, tmp_path, capsys):
    "The README's first command: a photo saved at quality 15, restored, and drawn before/after, in a folder of its own."
    from PIL import Image
    from artifact_removal.cli import main
    Image.open(sorted((data_dir / 'valid').glob('*.jpg'))[0]).convert('RGB').crop((0, 0, 160, 128)).save(tmp_path / 'p.png')
    assert main(['demo', str(tmp_path / 'p.png'), '-o', str(tmp_path / 'demo')]) == 0
    out = capsys.readouterr().out
    assert 'quality 15' in out and 'open it' in out
    with Image.open(tmp_path / 'demo' / 'input_q15.jpg') as im: assert im.format == 'JPEG' and im.size == (160, 128)
    assert Image.open(tmp_path / 'demo' / 'restored.png').size == (160, 128)
    assert (tmp_path / 'demo' / 'before_after.png').stat().st_size > 10_000

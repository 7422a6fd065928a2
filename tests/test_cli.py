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

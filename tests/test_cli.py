"""The command line parses every option to the type of its NoGANConfig field."""
from artifact_removal.cli import _parser


def test_train_options_are_typed():
    a = _parser().parse_args(['train', '--data', 'd', '--out', 'o', '--gen-epochs', '3', '--gen-lr', '1e-3',
                              '--quality', '10', '40', '--pretrained', '--gen-loss', 'l1+ssim:0.2'])
    assert a.gen_epochs == 3 and a.gen_lr == 1e-3 and a.quality == [10, 40] and a.pretrained is True
    assert a.gen_loss == 'l1+ssim:0.2' and a.size is None

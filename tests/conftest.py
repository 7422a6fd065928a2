import os
os.environ.setdefault('HF_HUB_OFFLINE', '1')  # timm must fail fast, not hang, without the network
os.environ.setdefault('MPLBACKEND', 'Agg')
import tempfile
os.environ.setdefault('ARTIFACT_REMOVAL_HOME', tempfile.mkdtemp(prefix='artifact_removal_home_'))  # no writes to ~/.cache

import shutil
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1].parent / 'shared' / 'data'


def need(path):
    if not path.exists(): pytest.skip(f'{path} not found: the shared data folder sits beside the checkout')
    return path


@pytest.fixture(scope='session')
def data_dir(): return need(DATA)


@pytest.fixture(scope='session')
def mini_train(tmp_path_factory, data_dir):
    "Six training images (five BSDS, one large Sun-Hays) in a temporary folder."
    d = tmp_path_factory.mktemp('mini_train')
    files = sorted((data_dir / 'train').glob('bsds_*'))[:5] + sorted((data_dir / 'train').glob('sunhays_*'))[:1]
    for f in files: shutil.copy(f, d / f.name)
    return d


@pytest.fixture(scope='session')
def mini_valid(tmp_path_factory, data_dir):
    d = tmp_path_factory.mktemp('mini_valid')
    for f in sorted((data_dir / 'valid').glob('*'))[:3]: shutil.copy(f, d / f.name)
    return d

"""Every notebook in nbs/ runs top to bottom (QUICK settings) without a cell error."""
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NBS = sorted((Path(__file__).resolve().parents[1] / 'nbs').glob('*.ipynb'))


@pytest.mark.parametrize('path', NBS, ids=[p.name for p in NBS])
def test_notebook_runs(path, data_dir):
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name='python3', resources={'metadata': {'path': str(path.parent)}}).execute()

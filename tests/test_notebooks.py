"""Every notebook in nbs/ runs top to bottom (QUICK settings) without a cell error, from a clean kernel."""
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow  # whole-model runs: CI runs them, the quick command skips them

NBS = sorted((Path(__file__).resolve().parents[1] / 'nbs').glob('*.ipynb'))


@pytest.mark.parametrize('path', NBS, ids=[p.name for p in NBS])
def test_notebook_runs(path, data_dir):
    "The stored outputs are dropped first, so what passes is this run, not what the file remembers."
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == 'code']
    for c in code: c.outputs, c.execution_count = [], None
    # a loaded machine can take minutes to start a kernel (the default wait is 60 s)
    NotebookClient(nb, timeout=600, startup_timeout=600, kernel_name='python3',
                   resources={'metadata': {'path': str(path.parent)}}).execute()
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))

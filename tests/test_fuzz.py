"""A bounded sample of benchmarks/fuzz.py's cases (property-based, hypothesis): arrays, tensors, PIL images, file
bytes and odd objects into `restore_image`, each in a child process with a time and a memory limit. Every case
must end in an output of the right kind, shape and dtype with finite values, or a documented error naming its
input. The 10,000-case run and its counts are in docs/benchmarks/fuzz.md."""
import importlib.util
from pathlib import Path

import pytest

pytest.importorskip('hypothesis')
from hypothesis import HealthCheck, given, settings

_spec = importlib.util.spec_from_file_location('fuzz', Path(__file__).parents[1] / 'benchmarks' / 'fuzz.py')
fuzz = importlib.util.module_from_spec(_spec); _spec.loader.exec_module(fuzz)

# about a minute on a loaded 2-core machine, with the child's start (PyTorch, onnxruntime, the ONNX export)
SAMPLE = settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope='module')
def sandbox():
    box = fuzz.Sandbox(timeout=60, memory=3 << 30)
    yield box
    box.close()


def _check(sandbox, recipe):
    outcome, detail, _ = sandbox.run(recipe)
    assert outcome in (fuzz.OK, fuzz.REFUSED), f'{outcome}: {detail}\nrecipe: {recipe}'


@pytest.mark.slow
@SAMPLE
@given(recipe=fuzz.array_recipes())
def test_arrays(sandbox, recipe): _check(sandbox, recipe)


@pytest.mark.slow
@SAMPLE
@given(recipe=fuzz.tensor_recipes())
def test_tensors(sandbox, recipe): _check(sandbox, recipe)


@pytest.mark.slow
@SAMPLE
@given(recipe=fuzz.pil_recipes())
def test_pil_images(sandbox, recipe): _check(sandbox, recipe)


@pytest.mark.slow
@settings(SAMPLE, max_examples=80)
@given(recipe=fuzz.file_recipes())
def test_file_bytes(sandbox, recipe): _check(sandbox, recipe)


@pytest.mark.slow
@SAMPLE
@given(recipe=fuzz.object_recipes())
def test_other_objects(sandbox, recipe): _check(sandbox, recipe)


@pytest.mark.slow
@settings(SAMPLE, max_examples=4)
@given(recipe=fuzz.with_model(fuzz.recipes(), default_share=1))
def test_default_model(sandbox, recipe): _check(sandbox, recipe)


@pytest.mark.slow
def test_the_harness_catches_hangs_memory_and_deaths():
    "The sandbox's limits work: a case that sleeps, one that grows, one that kills its process."
    box = fuzz.Sandbox(timeout=3, memory=5 << 29)  # 2.5 GiB: the child starts near 1
    try:
        assert box.run({'kind': 'selftest', 'what': 'hang'})[0] == 'hang'
        assert box.run({'kind': 'selftest', 'what': 'memory'})[0] == 'memory'
        assert box.run({'kind': 'selftest', 'what': 'exit'})[0] == 'crash'
        ok = box.run({'kind': 'object', 'object': 'none', 'options': {'strength': 1.0, 'tile': None, 'quality': None,
                                                                      'out': None, 'backend': 'torch'}})
        assert ok[0] == fuzz.REFUSED and box.restarts == 3  # a fresh child after each
    finally: box.close()


def test_judging_rules():
    "The oracle itself: which settings are valid, and when an error names its input (no child needed)."
    valid = fuzz._options_valid({'strength': float('nan'), 'tile': 12.5, 'quality': 50})
    assert valid == {'strength': False, 'tile': False, 'quality': True}
    np = pytest.importorskip('numpy')
    assert fuzz._array_valid(np.zeros((4, 4, 3), '>u2')) and not fuzz._array_valid(np.full((4, 4), np.nan))
    assert not fuzz._array_valid(np.full((4, 4), 2.0)) and not fuzz._array_valid(np.zeros((4, 4, 5), np.uint8))
    a = np.zeros((2, 3))
    assert '(2, 3)' in fuzz._names(a, 'array', {'strength': True}, None)
    assert 'strength' in fuzz._names(a, 'array', {'strength': False}, None)

"""Release a trained generator: fp16 safetensors into models/, its registry entry, and its training log.

    python tools/publish_model.py runs/release/gen_pretrain.pth --name fidelity --run runs/release \
        --stage gen_pretrain --recipe "NoGAN stage 1, L1, ..." --hardware "2-core CPU" [--default]

First the blind check on clean validation images (`--valid`): a model that makes them worse at q90 or q95
by more than `--max-drop` dB on average is not published, however well it scores at q10. The default, 0.5 dB,
is the issue's 0.05 dB on LIVE1 moved to `valid/`: its photos were JPEGs already, so at q95 the input scores
50.4 dB (LIVE1: 39.3), and the same added error costs about ten times as many dB there.

Then overwrites `models/NAME.safetensors` (one file per model, so the repository does not grow with every
session), records its sha256 in `models/registry.json`, and appends this session's stage times and
validation curve to `models/training_log.json`, so training carries over sessions with `--init`. A run that
started from another run's weights rather than a published model brings that run into the log too (and so
on back to a published model or run), so training that was never published on its own still counts. The
cumulative training time counts from the model's latest from-scratch run: a new network starts from nothing.
Every input (run logs, `--metrics`, the training log) is read before anything is written: a broken one stops
the release with its file named and leaves `models/` as it was.
"""
import argparse
import datetime
import json
import sys
from pathlib import Path

from artifact_removal.data import find_images
from artifact_removal.evaluate import blind_check
from artifact_removal.files import atomic_path
from artifact_removal.models import create_generator
from artifact_removal.registry import bundled_dir, get_model_info, publish_model
from artifact_removal.restore import Restorer
from artifact_removal.weights import read_generator_state, save_generator


def training_seconds(sessions) -> float:
    "Stage seconds of the sessions since the latest one that started from scratch (no `init`)."
    start = max((i for i, s in enumerate(sessions) if not (s.get('config') or {}).get('init')), default=0)
    return sum(sum(s['stage_seconds'].values()) for s in sessions[start:])


def read_json(path: Path):
    "The file's JSON, None where there is no file; a broken one is named in the error."
    if not path.exists(): return None
    try: return json.loads(path.read_text())
    except json.JSONDecodeError as e: raise ValueError(f'{path}: not valid JSON ({e})') from None


def init_of(run: Path) -> str:
    "The weights `run` started from (its `--init`), or ''."
    return ((read_json(run / 'config.json') or {}).get('config') or {}).get('init') or ''


def earlier_runs(run: Path, logged=()) -> list:
    """The runs whose weights `run` started from, oldest first: `--init` files inside a run folder, back to a model
    or to a run already `logged` (published before: it and what it continued are counted already)."""
    chain, current = [], run
    while init := init_of(current):
        current = Path(init).parent
        if not (current / 'config.json').exists() or str(current) in logged or current == run or current in chain: break
        chain.insert(0, current)
    return chain


def session_entry(run, stage: str, weights, hardware: str) -> dict:
    "One run's stage times, validation curve and config, as the training log keeps them."
    read = lambda name: read_json(run / name) if run else None
    valid = read(f'{stage}_valid.json') if stage == 'gen_pretrain' else read('switch_point.json')
    seconds = read('times.json') or {}
    if valid and stage == 'gen_pretrain':  # the validation log counts stage 1 across resumes, times.json one run
        seconds['gen_pretrain'] = max(seconds.get('gen_pretrain', 0), valid[-1]['seconds'])
    return {'date': datetime.date.today().isoformat(), 'run': str(run), 'hardware': hardware,
            'weights': str(weights), 'stage_seconds': seconds, 'validation': valid,
            'config': (read('config.json') or {}).get('config')}


def log_entries(run, stage: str, weights, hardware: str, logged=()) -> list:
    """The training log's entries for a published run: the unpublished runs it continued (stage 1; `hardware` is
    taken to be theirs too), then itself."""
    earlier = earlier_runs(run, logged) if run else []  # each with the weights the next run started from
    return ([session_entry(r, 'gen_pretrain', init_of(nxt), hardware) for r, nxt in zip(earlier, earlier[1:] + [run])]
            + [session_entry(run, stage, weights, hardware)])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('weights', help="a run's .pth (or checkpoint) with the generator's state_dict")
    p.add_argument('--name', required=True)
    p.add_argument('--arch', default='mobilenetv3_small_100')
    p.add_argument('--run', help='the run folder, for times.json and the validation logs')
    p.add_argument('--stage', default='gen_pretrain', help="which validation log to keep: 'gen_pretrain' or 'switch_point'")
    p.add_argument('--recipe', default='')
    p.add_argument('--description', default='')
    p.add_argument('--hardware', default='', help='where the run (and the unpublished runs it continued) trained')
    p.add_argument('--metrics', help='a JSON file of measured metrics for the registry entry')
    p.add_argument('--default', action='store_true', help='make it the default model')
    p.add_argument('--valid', default='../shared/data/valid', help='clean images for the blind check (never a test set)')
    p.add_argument('--valid-images', type=int, default=20, help='how many of them')
    p.add_argument('--max-drop', type=float, default=0.5, help='largest PSNR loss (dB) allowed at q90/q95 on them')
    a = p.parse_args()

    # every input is read before anything is written, so a broken one leaves the release as it was
    log_path = bundled_dir() / 'training_log.json'
    try:
        metrics = read_json(Path(a.metrics)) if a.metrics else {}
        if metrics is None: raise ValueError(f'{a.metrics}: no such file')
        log = read_json(log_path) or {}
        entries = log_entries(Path(a.run) if a.run else None, a.stage, a.weights, a.hardware,
                              logged={s.get('run') for s in log.get(a.name, [])})
    except ValueError as e: sys.exit(f'not published: {e}')
    model = create_generator(a.arch)
    model.load_state_dict(read_generator_state(a.weights))
    candidate = Restorer(model)
    candidate.name = a.name
    check = blind_check(candidate, find_images(a.valid)[:a.valid_images], qualities=(90, 95), tolerance=a.max_drop)
    print(check.markdown())
    if not check.passed: sys.exit(f'not published: {check.verdict()} ({a.valid_images} images of {a.valid})')
    path = save_generator(model, bundled_dir() / f'{a.name}.safetensors', a.arch, recipe=a.recipe)
    publish_model(path, a.name, recipe=a.recipe, description=a.description, metrics=metrics, default=a.default)

    new_runs = {e['run'] for e in entries}
    sessions = [s for s in log.get(a.name, []) if s.get('run') not in new_runs]  # one entry per run: the latest
    sessions += entries
    log[a.name] = sessions
    total = training_seconds(sessions)
    log[f'{a.name}_cumulative_hours'] = round(total / 3600, 2)
    with atomic_path(log_path) as tmp: Path(tmp).write_text(json.dumps(log, indent=1) + '\n')
    print(f'{path} ({get_model_info(a.name).sha256[:12]}), cumulative training {total / 3600:.2f} h')


if __name__ == '__main__': main()

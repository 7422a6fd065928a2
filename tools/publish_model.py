"""Release a trained generator: fp16 safetensors into models/, its registry entry, and its training log.

    python tools/publish_model.py runs/release/gen_pretrain.pth --name fidelity --run runs/release \
        --stage gen_pretrain --recipe "NoGAN stage 1, L1, ..." --hardware "2-core CPU" [--default]

First the release gate, on validation images only (never a test set):
- the blind check on `--valid`: a model that makes them worse at q90 or q95 by more than `--max-drop` dB on
  average is not published, however well it scores at q10. The default, 0.5 dB, is 0.05 dB on LIVE1 moved to
  `valid/`: its photos were JPEGs already, so at q95 the input scores 50.4 dB (LIVE1: 39.3), and the same added
  error costs about ten times as many dB there;
- no harm on smooth content (`--smooth`, 512 px centre crops): at q95 at most 0.05 dB lost, at q75 a gain, and
  a mean colour shift of at most 0.2 levels per channel; a model short of that bar may still replace a published
  one that does more harm on all three (the bar is the target; a release must not move away from it);
- the luma and chroma grid at q10 on `--valid` no higher than the published model of that name leaves;
- with `--video`, on codec clips made from `--valid` (`VideoValidationScorer`: pans over 20 of its photos): no
  loss at H.264 CRF 18 (at most 0.05 dB on average), and a gain at CRF 30 and 38, at H.265 QP 37 and at MPEG-2 q12.
A super-resolution model (an `--arch` with a scale, e.g. mobilenetv3_small_100_sr2 as `sr2`) has its own gate
instead (`sr_release_gate`): on `--valid` crops downscaled by its scale, it must beat the bicubic upscale on clean
inputs, at q95 and at q30, and not fall behind the published model of that name on clean inputs.

Then overwrites `models/NAME.safetensors` (one file per model, so the repository does not grow with every
session), records its sha256 in `models/registry.json`, and appends this session's stage times and
validation curve to `models/training_log.json`, so training carries over sessions with `--init`. A run that
started from another run's weights rather than a published model brings that run into the log too (and so
on back to a published model or run), so training that was never published on its own still counts. The
cumulative training time counts from the model's latest from-scratch run: a new network starts from nothing.
Every input (run logs, `--metrics`, the training log) is read before anything is written: a broken one stops
the release with its file named and leaves `models/` as it was. Releases into one models folder run one at a
time (`publish_lock`): a second one waits, then gates against what the first published.
"""
import argparse
import datetime
import fcntl
import json
import sys
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from artifact_removal.evaluate import ValidationScorer, blind_check
from artifact_removal.files import atomic_path
from artifact_removal.image_io import find_images
from artifact_removal.models import GENERATOR_CONFIGS, check_arch, create_generator
from artifact_removal.registry import (ModelInfo, bundled_dir, get_model_info, list_models, model_path, register_model,
                                       sha256sum)
from artifact_removal.restore import Restorer
from artifact_removal.weights import load_generator, read_generator_state, read_metadata, save_generator


def training_seconds(sessions) -> float:
    "Stage seconds of the sessions since the latest one that started from scratch (no `init`)."
    start = max((i for i, s in enumerate(sessions) if not (s.get('config') or {}).get('init')), default=0)
    return sum(sum(s['stage_seconds'].values()) for s in sessions[start:])


@contextmanager
def publish_lock(folder: Path):
    """One release at a time per models folder: each reads the training log and the published model, gates, then
    writes both, so a second one running beside it would drop the first one's log entries or gate against stale
    weights. The second waits, then sees what the first published."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / '.publish.lock', 'w') as f:
        try: fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f'waiting for another publish_model into {folder} to finish', flush=True)
            fcntl.flock(f, fcntl.LOCK_EX)
        try: yield
        finally: fcntl.flock(f, fcntl.LOCK_UN)


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


def logged_lineage(name, entries, log) -> list:
    """The logged sessions the new `entries` continue. The earliest of them started from some weights: if a logged
    session published those (same sha256, any model's log), its model's sessions up to it; else, for sessions logged
    without their sha256, those of the registered model with those weights (another model's when a run starts
    from its weights), else those of `name`."""
    first = Path((entries[0].get('config') or {}).get('init') or '') if entries else Path()
    digest = sha256sum(first) if first.is_file() else None
    for sessions in (v for v in log.values() if isinstance(v, list)) if digest else ():
        hit = next((i for i, s in enumerate(sessions) if s.get('sha256') == digest), None)
        if hit is not None: return sessions[:hit + 1]
    source = next((m for m in list_models() if get_model_info(m).sha256 == digest), name)
    return log.get(source, []) if source in log else log.get(name, [])


def record_in_registry(weights, name, recipe='', description='', metrics=None, default=False, folder=None) -> ModelInfo:
    """Record the weights file `weights` (in `folder`, default the bundled one) as model `name` in its registry.json,
    atomically, with its sha256 and the architecture stored in its metadata; `default` makes it the default."""
    weights, folder = Path(weights), Path(folder or bundled_dir())
    info = ModelInfo(name, weights.name, sha256sum(weights), read_metadata(weights)['arch'], '', recipe, description,
                     metrics or {})
    manifest = read_json(folder / 'registry.json') or {'default': '', 'models': {}}
    manifest['models'][name] = {k: v for k, v in asdict(info).items() if k != 'name'}
    if default or not manifest['default']: manifest['default'] = name
    with atomic_path(folder / 'registry.json') as tmp: Path(tmp).write_text(json.dumps(manifest, indent=1) + '\n')
    return register_model(info)


SMOOTH_RULES = {'smooth_q95_gain': (-0.05, 'loses more than 0.05 dB at q95'),
                'smooth_q75_gain': (0.0, 'is no better than the input at q75')}


def release_gate(candidate, valid, smooth, published=None, n_images=100, max_shift=0.2) -> list:
    """Why `candidate` (an nn.Module) may not be published: no harm on `smooth` content and no more grid at q10 on
    `valid` than the `published` model leaves. An empty list: it may."""
    scorer = ValidationScorer(valid, n_images, smooth=smooth, stlpips=False)
    row = scorer(candidate)
    print('candidate:', {k: round(v, 4) for k, v in row.items()})
    harm = [f'on smooth content it {what} ({row[key]:+.3f} dB)' for key, (floor, what) in SMOOTH_RULES.items()
            if row[key] < floor]
    if row['smooth_shift'] > max_shift: harm.append(f"it shifts smooth content's colour by {row['smooth_shift']:.2f} levels")
    if published is None: return harm
    old = scorer(published)
    print('published:', {k: round(v, 4) for k, v in old.items()})
    why = [f'its {k.replace("_", " ")} at q10 is {row[k]:.3f}, the published model leaves {old[k]:.3f}'
           for k in ('luma_grid', 'chroma_grid') if row[k] > old[k] + 0.005]
    less_harm = all(row[k] > old[k] for k in SMOOTH_RULES) and row['smooth_shift'] < old['smooth_shift']
    if harm and less_harm:  # short of the bar, but it replaces a model that does more harm
        print('below the no-harm bar, but less harm than the published model: ' + '; '.join(harm))
        return why
    return why + harm


SR_QUALITY = 30  # the compressed low-resolution inputs an SR release is checked on


def sr_release_gate(candidate, valid, scale, published=None, n_images=100) -> list:
    """Why the x`scale` `candidate` may not be published: on `n_images` centre crops of `valid` downscaled by `scale`
    (bicubic), it must score a higher luma PSNR than their bicubic upscale clean, at q95 and at q30, and no lower on
    clean inputs than the `published` model. An empty list: it may."""
    scorer = ValidationScorer(valid, n_images, low=SR_QUALITY, high=95, stlpips=False, scale=scale)
    base, row = scorer(None), scorer(candidate)
    print('candidate:', {k: round(v, 4) for k, v in row.items()})
    why = [f'it does not beat the bicubic upscale {what} ({gain:+.3f} dB)' for what, gain in
           (('on clean inputs', row['clean_gain']), ('at q95', row['q95_gain']),
            (f'at q{SR_QUALITY}', row['psnr'] - base['psnr'])) if gain <= 0]
    if published is not None:
        old = scorer(published)
        print('published:', {k: round(v, 4) for k, v in old.items()})
        if row['psnr_clean'] < old['psnr_clean']:
            why.append(f"on clean inputs it scores {row['psnr_clean']:.3f} dB, the published model {old['psnr_clean']:.3f}")
    return why


VIDEO_RULES = {'video_gain_crf18': (-0.05, 'loses more than 0.05 dB at H.264 CRF 18'),
               **{f'video_gain_{k}': (0.0, f'gains nothing at {what}') for k, what in
                  (('crf30', 'H.264 CRF 30'), ('crf38', 'H.264 CRF 38'), ('hevc_qp37', 'H.265 QP 37'),
                   ('mpeg2_q12', 'MPEG-2 q12'))}}


def video_gate(candidate, valid, n_clips=20) -> list:
    "Why `candidate` may not be published as a video model: its PSNR gains on codec clips made from `valid`."
    from artifact_removal.evaluate_video import VideoValidationScorer
    row = VideoValidationScorer(valid, n_clips=n_clips, n_frames=8)(candidate)
    print('video:', {k: round(v, 4) for k, v in row.items()})
    return [f'on codec clips it {what} ({row[k]:+.3f} dB)' for k, (floor, what) in VIDEO_RULES.items() if row[k] <= floor]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('weights', help="a run's .pth (or checkpoint) with the generator's state_dict")
    p.add_argument('--name', required=True)
    p.add_argument('--arch', default='mobilenetv3_small_100', help='its GENERATOR_CONFIGS name')
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
    p.add_argument('--smooth', default='../shared/data/smooth/valid', help='smooth images for the no-harm check')
    p.add_argument('--video', action='store_true', help='a video model: also gated on codec clips made from --valid')
    a = p.parse_args()
    with publish_lock(bundled_dir()): publish(a)


def publish(a):
    "The release gate, then the weights, registry entry and training log of `a` (parsed arguments)."
    # every input is read before anything is written, so a broken one leaves the release as it was
    log_path = bundled_dir() / 'training_log.json'
    try:
        metrics = read_json(Path(a.metrics)) if a.metrics else {}
        if metrics is None: raise ValueError(f'{a.metrics}: no such file')
        log = read_json(log_path) or {}
        entries = log_entries(Path(a.run) if a.run else None, a.stage, a.weights, a.hardware,
                              logged={s.get('run') for s in log.get(a.name, [])})
    except ValueError as e: sys.exit(f'not published: {e}')
    state = read_generator_state(a.weights)
    model = create_generator(a.arch, quality_aware=any(k.startswith('film.') for k in state))
    model.load_state_dict(state)
    published = load_generator(model_path(a.name)) if a.name in list_models() else None
    scale = GENERATOR_CONFIGS[check_arch(a.arch)].get('scale', 1)
    if scale > 1: why = sr_release_gate(model, a.valid, scale, published)
    else:
        check = blind_check(Restorer(model, backend='torch'), find_images(a.valid)[:a.valid_images], qualities=(90, 95),
                            tolerance=a.max_drop)
        print(check.markdown())
        if not check.passed: sys.exit(f'not published: {check.verdict()} ({a.valid_images} images of {a.valid})')
        why = release_gate(model, a.valid, a.smooth, published) + (video_gate(model, a.valid) if a.video else [])
    if why: sys.exit('not published: ' + '; '.join(why))
    path = save_generator(model, bundled_dir() / f'{a.name}.safetensors', a.arch, recipe=a.recipe)
    record_in_registry(path, a.name, recipe=a.recipe, description=a.description, metrics=metrics, default=a.default)

    entries[-1]['sha256'] = get_model_info(a.name).sha256  # the weights this session published: later runs start here
    new_runs = {e['run'] for e in entries}
    sessions = [s for s in logged_lineage(a.name, entries, log) if s.get('run') not in new_runs]  # one entry per run
    sessions += entries
    log[a.name] = sessions
    total = training_seconds(sessions)
    log[f'{a.name}_cumulative_hours'] = round(total / 3600, 2)
    with atomic_path(log_path) as tmp: Path(tmp).write_text(json.dumps(log, indent=1) + '\n')
    print(f'{path} ({get_model_info(a.name).sha256[:12]}), cumulative training {total / 3600:.2f} h')


if __name__ == '__main__': main()

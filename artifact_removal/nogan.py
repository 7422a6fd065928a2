"""The NoGAN recipe (DeOldify) as resumable stages, each a function that reads and writes state_dicts in `out`.

1. `pretrain_generator`: the generator alone on a content loss (`fit_one_cycle`; frozen then unfrozen when the
   encoder is pretrained), keeping the EMA of its weights (`ModelEMA`).
2. `save_generated` + `pretrain_critic`: the critic learns to tell the generator's outputs from clean patches.
3. `train_gan`: a short GAN phase (`gan_learner`), the generator saved every `save_every` iterations.
4. `choose_switch_point`: every GAN checkpoint scored on validation images (`ValidationScorer`);
   `switch_point_rule` picks one where DeOldify picked by eye.

`run_nogan(out, data, cfg)` runs them in order and skips what is already done, so an interrupted run resumes.
Callbacks live in `callbacks`, Learner builders in `learner`.
"""
import json
import math
import os
import shutil
import time
import warnings
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from fastprogress.fastprogress import progress_bar
from PIL import Image

from .callbacks import GANCheckpoints, ModelEMA, QualityTracker, StepTimer, kept_model, load_state, save_state, write_json
from .config import QUICK, NoGANConfig
from .data import get_critic_dls, get_pair_dls
from .evaluate import ValidationScorer
from .files import atomic_path
from .image_io import find_images, load_image
from .learner import (critic_learner, distributed_context, fit_resumable, gan_learner, gen_learner, group_lrs,
                      load_init)
from .metrics import to_uint8
from .models import create_generator
from .visualize import plot_side_by_side, plot_validation_curve
from .weights import read_generator_state

__all__ = ['NoGANConfig', 'QUICK', 'init_generator', 'budget_config', 'pretrain_generator', 'save_generated',
           'pretrain_critic', 'train_gan', 'switch_point_rule', 'choose_switch_point', 'run_nogan']


def _folders(data) -> list: return [data] if isinstance(data, (str, os.PathLike)) else list(data)


def _pair_dls(data, valid, cfg):
    if cfg.video:  # codec frames mixed with JPEG pairs
        from .video_data import get_video_pair_dls
        if valid is None: raise ValueError('training on video pairs needs a validation folder (--valid)')
        return get_video_pair_dls(_folders(data), valid, size=cfg.size, bs=cfg.bs, n_patches=cfg.n_patches,
                                  p_video=cfg.video, jpeg=cfg.degradation(), seed=cfg.seed, num_workers=cfg.num_workers)
    return get_pair_dls(_folders(data), valid, size=cfg.size, bs=cfg.bs, n_patches=cfg.n_patches, seed=cfg.seed,
                        degradation=cfg.degradation(), num_workers=cfg.num_workers)


def _create_generator(cfg):
    return create_generator(cfg.arch, pretrained=cfg.pretrained, quality_aware=cfg.quality_aware, fixed_bn=cfg.fixed_bn)


def _load_generator(cfg, path): return load_init(_create_generator(cfg), path).eval()


def _scorer(valid, cfg):
    "The `ValidationScorer` of a run: its validation crops at `cfg.valid_quality` and q95, and the smooth set."
    scorer = ValidationScorer(valid, cfg.valid_images, cfg.valid_crop, low=cfg.valid_quality, high=95,
                              smooth=cfg.smooth_valid or None, scale=cfg.scale)
    if not cfg.video: return scorer
    from .evaluate_video import VideoValidationScorer  # and codec clips made from the same photos
    return VideoValidationScorer(valid, jpeg=scorer)


def _gen_learner(dls, cfg, loss, **kwargs):
    return gen_learner(dls, cfg.arch, loss, cfg.pretrained, quality_aware=cfg.quality_aware, fixed_bn=cfg.fixed_bn,
                       estimator_weight=cfg.estimator_weight, p_estimated=cfg.p_estimated,
                       estimator_quantile=cfg.estimator_quantile, p_underread=cfg.p_underread, **kwargs)


def _stage1_learner(dls, cfg):
    return _gen_learner(dls, cfg, cfg.gen_loss, cbs=ModelEMA(cfg.gen_ema) if cfg.gen_ema else None)


def init_generator(out, cfg=NoGANConfig()) -> Path:
    "Stage 1 skipped (`gen_epochs=0`): the NoGAN cycle starts from `cfg.init` as it is (or a new generator)."
    final = Path(out) / 'gen_pretrain.pth'
    save_state((_load_generator(cfg, cfg.init) if cfg.init else _create_generator(cfg)).state_dict(), final)
    return final


def _patches_for_budget(data, valid, cfg, tracker, seconds) -> dict:
    """The `n_patches` for which `cfg.gen_epochs` epochs (their steps and validations, and the init's score) take
    about `seconds` on this machine, from one validation (fastai's and `tracker`'s) and timed steps of a throwaway
    learner built as the stage builds its own. With `cfg.init` that validation is the stage's epoch 0."""
    timer = StepTimer(skip=5 + 4 * cfg.num_workers, n=40)  # well past the batches the workers prefetched (2 each)
    n_images = sum(len(find_images(f)) for f in _folders(data))
    probe = 2 * math.ceil((timer.skip + timer.n + 1) * cfg.bs / n_images)  # x2: a held-out tenth
    dls = _pair_dls(data, valid, replace(cfg, n_patches=probe))
    learn = _stage1_learner(dls, cfg)
    if cfg.init: load_init(learn.model, cfg.init)
    t = time.perf_counter()
    learn.validate()
    if cfg.init and not tracker.log: tracker.record(0, 0., learn.model)  # the stage's epoch 0, scored once
    else: tracker.scorer(learn.model)
    valid_seconds = time.perf_counter() - t
    learn.fit(1, cfg.gen_lr, cbs=timer)
    per_patch = timer.seconds * len(dls.train_ds) / probe / cfg.bs  # one more patch per image: this many seconds
    if cfg.init: seconds -= valid_seconds  # that validation was the stage's epoch 0: the budget covers it too
    epochs = cfg.gen_epochs + (cfg.gen_frozen_epochs if cfg.pretrained else 0)
    n_patches = int((seconds / epochs - valid_seconds) / per_patch)
    if n_patches * n_images < cfg.bs:
        raise ValueError(f'a {cfg.gen_minutes:g}-minute budget leaves no time to train: a step takes {timer.seconds:.2f} s '
                         f'and a validation {valid_seconds:.0f} s here, so {epochs} epochs would not hold one batch '
                         'each; give more --gen-minutes, or fewer --gen-epochs or --valid-images')
    if valid_seconds > seconds / epochs / 2:
        warnings.warn(f'validation takes {valid_seconds:.0f} s of the {seconds / epochs:.0f} s each epoch may take: '
                      'fewer --gen-epochs or --valid-images, or more --gen-minutes, leave more time to train')
    return {'minutes': cfg.gen_minutes, 'step_seconds': timer.seconds, 'valid_seconds': valid_seconds,
            'n_patches': n_patches, 'epochs': epochs}


def budget_config(out, data, valid, cfg, tracker, seconds=None) -> tuple:
    """`cfg` with `n_patches` sized so that its stage 1 fills `cfg.gen_minutes` (less `seconds` already spent), and
    the budget it chose (`gen_budget.json`; a resumed run keeps the size it chose)."""
    budget_file = Path(out) / 'gen_budget.json'
    if (Path(out) / 'gen_pretrain_ckpt.pth').exists() and budget_file.exists():
        budget = json.loads(budget_file.read_text())
    else:
        budget = _patches_for_budget(data, valid, cfg, tracker, cfg.gen_minutes * 60 - (seconds or 0) - 10)
        write_json(budget, budget_file)
    print(f"time budget {cfg.gen_minutes:g} min: {budget['step_seconds']:.3f} s/step, "
          f"{budget['valid_seconds']:.1f} s/validation -> {budget['n_patches']} patches per image and epoch")
    return replace(cfg, n_patches=budget['n_patches']), budget


def pretrain_generator(out, data, valid=None, cfg=NoGANConfig()) -> Path:
    """Stage 1: fit the generator on the content loss; writes `gen_pretrain.pth`; resumes from its checkpoint.
    With `cfg.gen_minutes` it first sizes the epochs to fill that budget (`budget_config`)."""
    t0, out = time.time(), Path(out)
    final, ckpt = out / 'gen_pretrain.pth', out / 'gen_pretrain_ckpt.pth'
    scorer = _scorer(valid or _folders(data)[0], cfg)
    tracker = QualityTracker(scorer, out / 'gen_pretrain_valid.json')
    budget = None
    if cfg.gen_minutes: cfg, budget = budget_config(out, data, valid, cfg, tracker, time.time() - t0)
    learn = _stage1_learner(_pair_dls(data, valid, cfg), cfg)
    if cfg.init:
        load_init(learn.model, cfg.init)
        if not tracker.log: tracker.record(0, 0., learn.model)  # the score a continued run must beat
    if cfg.pretrained and cfg.gen_frozen_epochs:
        fit_resumable(learn, cfg.gen_frozen_epochs, group_lrs(learn, cfg.gen_lr, True), out / 'gen_frozen_ckpt.pth',
                      QualityTracker(scorer, out / 'gen_frozen_valid.json'))
        learn.unfreeze()
    fit_resumable(learn, cfg.gen_epochs, group_lrs(learn, cfg.gen_lr, cfg.pretrained), ckpt, tracker)
    input_scores = scorer(None)
    write_json({'stage': 'gen_pretrain', 'arch': cfg.arch, 'seconds_this_run': time.time() - t0,
                 'history': load_state(ckpt)['recorder'], 'valid_q10': tracker.log, 'input_q10': input_scores,
                 **({'budget': budget} if budget else {})}, out / 'gen_pretrain.json')
    plot_validation_curve(tracker.log, out / 'gen_pretrain_valid.png', input_scores, quality=cfg.valid_quality)
    save_state(kept_model(learn).state_dict(), final)
    return final


@torch.no_grad()
def save_generated(gen, data, out, cfg=NoGANConfig()) -> Path:
    """Stage 2a: for each training image, `cfg.critic_patches` random patches, JPEG-damaged and restored by `gen`,
    written to `out`/generated, with the clean patches in `out`/clean (DeOldify's image_gen folder)."""
    out, gen = Path(out), gen.eval()
    rng = np.random.default_rng(cfg.seed)
    deg = cfg.degradation()
    tmp = out.with_name(out.name + '.partial')
    shutil.rmtree(tmp, ignore_errors=True)
    for d in ('generated', 'clean'): (tmp / d).mkdir(parents=True)
    for f in progress_bar([f for folder in _folders(data) for f in find_images(folder)]):
        img = load_image(f)
        for k in range(cfg.critic_patches):
            w, h = img.size
            x, y = int(rng.integers(0, w - cfg.size + 1)), int(rng.integers(0, h - cfg.size + 1))
            clean = img.crop((x, y, x + cfg.size, y + cfg.size))
            damaged, q = deg(clean, rng)
            inp = torch.from_numpy(np.array(damaged)).permute(2, 0, 1)[None].float() / 255
            restored = gen(inp, quality=q) if gen.quality_aware else gen(inp)
            Image.fromarray(to_uint8(restored[0])).save(tmp / 'generated' / f'{f.stem}_{k}.png')
            clean.save(tmp / 'clean' / f'{f.stem}_{k}.png')
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)  # the folder appears whole or not at all
    return out


def pretrain_critic(out, critic_data, cfg=NoGANConfig()) -> Path:
    "Stage 2b: fit the critic on generated vs clean patches; writes `critic_pretrain.pth`."
    out = Path(out)
    final, ckpt = out / 'critic_pretrain.pth', out / 'critic_pretrain_ckpt.pth'
    dls = get_critic_dls(critic_data, size=cfg.size, bs=cfg.bs, seed=cfg.seed, num_workers=cfg.num_workers)
    learn = critic_learner(dls)
    fit_resumable(learn, cfg.critic_epochs, cfg.critic_lr, ckpt)
    save_state(learn.model.state_dict(), final)
    return final


def train_gan(out, data, valid=None, cfg=NoGANConfig()) -> Path:
    "Stage 3: the GAN phase from the pretrained generator and critic; checkpoints in `out`/gan."
    out = Path(out)
    folder, ckpt = out / 'gan', out / 'gan' / 'gan_ckpt.pth'
    dls = _pair_dls(data, valid, cfg)
    learn_gen = _gen_learner(dls, cfg, cfg.gan_loss or cfg.gen_loss)
    learn_crit = critic_learner(dls)
    start = 0
    if ckpt.exists():
        st = load_state(ckpt)
        learn_gen.model.load_state_dict(st['generator']); learn_crit.model.load_state_dict(st['critic'])
        start = st['iter']
        print(f'resuming the GAN phase at iteration {start}/{cfg.gan_iters}')
    else:
        learn_gen.model.load_state_dict(load_state(out / 'gen_pretrain.pth'))
        learn_crit.model.load_state_dict(load_state(out / 'critic_pretrain.pth'))
    if start < cfg.gan_iters:
        learn = gan_learner(learn_gen, learn_crit, cfg.critic_thresh, cfg.gan_weights,
                            GANCheckpoints(folder, cfg.save_every, cfg.gan_iters, start))
        n_epochs = max(1, -(-(cfg.gan_iters - start) // len(dls.train)))
        with distributed_context(learn): learn.fit(n_epochs, cfg.gan_lr)
    return folder


GRID_SLACK = 0.02  # switch-point rule: a GAN checkpoint may raise the luma or chroma grid at most this much


def switch_point_rule(rows, max_psnr_drop=0.1, grid_slack=GRID_SLACK) -> dict:
    """Of the scored checkpoints `rows` (the pretrained generator first), the one with the lowest ST-LPIPS among
    those that lose at most `max_psnr_drop` dB of PSNR and `grid_slack` of luma and chroma grid against the
    pretrained generator and do no more harm at q95 than it (ST-LPIPS alone does not see a grid)."""
    base = rows[0]
    ok = [r for r in rows if r['psnr'] >= base['psnr'] - max_psnr_drop
          and all(r[k] <= base[k] + grid_slack for k in ('luma_grid', 'chroma_grid'))
          and r.get('q95_gain', 0) >= min(base.get('q95_gain', 0), 0) - 0.01]
    return min(ok or rows[:1], key=lambda r: r['stlpips'])


def choose_switch_point(out, valid, cfg=NoGANConfig()) -> dict:
    """Stage 4: score the pretrained generator and each GAN checkpoint on `valid` (`ValidationScorer`), keep the
    one `switch_point_rule` picks (the pretrained generator itself when none qualifies). Writes
    `switch_point.json` and `generator.pth`."""
    out = Path(out)
    scorer = _scorer(valid, cfg)
    rows = [{'checkpoint': 'input', **scorer(None)},
            {'checkpoint': 'gen_pretrain.pth', **scorer(_load_generator(cfg, out / 'gen_pretrain.pth'))}]
    for f in progress_bar(sorted((out / 'gan').glob('gen_*.pth'))):
        rows.append({'checkpoint': f'gan/{f.name}', **scorer(_load_generator(cfg, f))})
    best = switch_point_rule(rows[1:], cfg.max_psnr_drop)
    result = {'rule': f'lowest ST-LPIPS with PSNR >= pretrained generator - {cfg.max_psnr_drop} dB, luma and '
                      f'chroma grid <= pretrained generator + {GRID_SLACK}, no more harm at q95',
              'chosen': best['checkpoint'], 'scores': rows,
              'valid': {'images': cfg.valid_images, 'crop': cfg.valid_crop, 'quality': cfg.valid_quality}}
    with atomic_path(out / 'generator.pth') as tmp: shutil.copyfile(out / best['checkpoint'], tmp)
    _plot_results(out, scorer.low[:3], cfg, best['checkpoint'])
    write_json(result, out / 'switch_point.json')
    return result


@torch.no_grad()
def _plot_results(out, pairs, cfg, chosen):
    "results.png: input | stage-1 generator | chosen generator | reference, for a few validation crops."
    gens = [_load_generator(cfg, out / 'gen_pretrain.pth'), _load_generator(cfg, out / chosen)]
    run = lambda g, x: to_uint8(g(torch.from_numpy(x).permute(2, 0, 1)[None].float() / 255)[0])
    rows = [[comp] + [run(g, comp) for g in gens] + [clean] for _, clean, comp in pairs]
    titles = [f'JPEG q{pairs[0][0]}', 'pretrained generator', f'chosen: {chosen}', 'reference']
    plot_side_by_side(rows, titles, out / 'results.png')


def _check_sources(data, valid, cfg):
    """Fail on a missing or empty image folder or a missing or unreadable `init` file before a run creates its
    folder."""
    for folder in _folders(data) + [valid, cfg.smooth_valid]:
        if folder: find_images(folder)
    if cfg.init: read_generator_state(cfg.init)


def run_nogan(out, data, valid=None, cfg=NoGANConfig(), cycles=1) -> dict:
    """All stages in order, skipping finished ones (so a rerun resumes); `cycles`>1 repeats critic and GAN
    stages from the chosen generator, as DeOldify repeated its NoGAN cycles."""
    out = Path(out)
    _check_sources(data, valid, cfg)
    out.mkdir(parents=True, exist_ok=True)
    write_json({'config': asdict(cfg), 'data': [str(f) for f in _folders(data)], 'valid': str(valid)},
                out / 'config.json')
    valid_for_choice = valid or _folders(data)[0]
    times = json.loads((out / 'times.json').read_text()) if (out / 'times.json').exists() else {}

    def stage(name, done, fn):
        if done.exists(): return
        t = time.time(); fn()
        times[name] = times.get(name, 0) + time.time() - t
        write_json(times, out / 'times.json')

    first = (lambda: pretrain_generator(out, data, valid, cfg)) if cfg.gen_epochs else lambda: init_generator(out, cfg)
    stage('gen_pretrain', out / 'gen_pretrain.pth', first)
    result, prev = None, out
    for c in range(cycles):
        cyc = out if c == 0 else out / f'cycle{c}'
        if c and not (cyc / 'gen_pretrain.pth').exists():
            cyc.mkdir(exist_ok=True)
            shutil.copyfile(prev / 'generator.pth', cyc / 'gen_pretrain.pth')
        prev = cyc
        gen = lambda: _load_generator(cfg, cyc / 'gen_pretrain.pth')
        stage(f'generate_{c}', cyc / 'critic_data', lambda: save_generated(gen(), data, cyc / 'critic_data', cfg))
        stage(f'critic_{c}', cyc / 'critic_pretrain.pth', lambda: pretrain_critic(cyc, cyc / 'critic_data', cfg))
        stage(f'gan_{c}', cyc / 'gan' / f'gen_{cfg.gan_iters:06d}.pth', lambda: train_gan(cyc, data, valid, cfg))
        stage(f'choose_{c}', cyc / 'switch_point.json', lambda: choose_switch_point(cyc, valid_for_choice, cfg))
        result = json.loads((cyc / 'switch_point.json').read_text())
    return result

"""The quick NoGAN recipe end to end, through the CLI, and resuming after an interruption."""
import json
import math
import re
from dataclasses import replace

import pytest
import torch

from artifact_removal.cli import main
from artifact_removal.callbacks import ResumableCheckpoint, load_state
from artifact_removal.nogan import QUICK, pretrain_generator, run_nogan
from artifact_removal.weights import read_generator_state


@pytest.mark.slow
def test_quick_recipe_cli(mini_train, mini_valid, tmp_path, capsys):
    out = tmp_path / 'run'
    assert main(['train', '--quick', '--data', str(mini_train), '--valid', str(mini_valid), '--out', str(out)]) == 0
    for f in ['gen_pretrain.pth', 'critic_pretrain.pth', 'gan/gen_000003.pth', 'gan/gen_000006.pth',
              'generator.pth', 'switch_point.json', 'times.json', 'gen_pretrain_valid.json',
              'gen_pretrain_valid.png', 'results.png']:
        assert (out / f).exists(), f
    sp = json.loads((out / 'switch_point.json').read_text())
    names = [r['checkpoint'] for r in sp['scores']]
    assert names[:2] == ['input', 'gen_pretrain.pth'] and 'gan/gen_000006.pth' in names
    assert sp['chosen'] in names[1:] and all('stlpips' in r and 'psnr' in r for r in sp['scores'])
    valid_log = json.loads((out / 'gen_pretrain_valid.json').read_text())  # q10 scores and the q95 gain
    assert all({'psnr', 'stlpips', 'q95_gain'} <= set(r) and abs(r['q95_gain']) < 10 for r in valid_log)
    assert len(list((out / 'critic_data' / 'generated').glob('*.png'))) == 6
    log = json.loads((out / 'gan' / 'gan_log.json').read_text())
    assert [r['iter'] for r in log] == [3, 6] and sum(r['gen_steps'] + r['critic_steps'] for r in log) == 6
    assert 'switch point' in capsys.readouterr().out
    # a finished run is not redone
    mtime = (out / 'gen_pretrain.pth').stat().st_mtime
    assert main(['train', '--quick', '--data', str(mini_train), '--valid', str(mini_valid), '--out', str(out)]) == 0
    assert (out / 'gen_pretrain.pth').stat().st_mtime == mtime


class Interrupt(Exception): pass


def test_generator_resumes_after_interruption(mini_train, mini_valid, tmp_path, monkeypatch, capsys):
    cfg = replace(QUICK, gen_epochs=3)
    orig = ResumableCheckpoint.after_completed_epoch
    def stop_after_two(self):
        orig(self)
        if self.epoch == 1: raise Interrupt('power cut')
    monkeypatch.setattr(ResumableCheckpoint, 'after_completed_epoch', stop_after_two)
    with pytest.raises(Interrupt): pretrain_generator(tmp_path, mini_train, mini_valid, cfg)
    steps_per_epoch = int(load_state(tmp_path / 'gen_pretrain_ckpt.pth')['ema']['steps']) // 2
    assert steps_per_epoch > 0
    assert not (tmp_path / 'gen_pretrain.pth').exists() and (tmp_path / 'gen_pretrain_ckpt.pth').exists()
    ema = load_state(tmp_path / 'gen_pretrain_ckpt.pth')['ema']  # a stopped run's checkpoint gives its average
    assert all(torch.equal(v, ema[f'module.{k}']) for k, v in read_generator_state(tmp_path / 'gen_pretrain_ckpt.pth').items())
    monkeypatch.setattr(ResumableCheckpoint, 'after_completed_epoch', orig)
    pretrain_generator(tmp_path, mini_train, mini_valid, cfg)
    assert 'resuming gen_pretrain_ckpt.pth after epoch 2/3' in capsys.readouterr().out
    log = json.loads((tmp_path / 'gen_pretrain_valid.json').read_text())
    assert [r['epoch'] for r in log] == [1, 2, 3]  # one more epoch, not a restart
    st = load_state(tmp_path / 'gen_pretrain_ckpt.pth')
    assert int(st['ema']['steps']) == 3 * steps_per_epoch  # the weight average went on where it stopped
    kept = load_state(tmp_path / 'gen_pretrain.pth')  # the average is what the stage keeps
    assert all(torch.equal(v, st['ema'][f'module.{k}']) for k, v in kept.items())
    assert any(not torch.equal(v, st['model'][k]) for k, v in kept.items())


@pytest.mark.slow
def test_gan_phase_resumes(mini_train, mini_valid, tmp_path, capsys):
    run_nogan(tmp_path, mini_train, mini_valid, QUICK)
    (tmp_path / 'gan' / 'gen_000006.pth').unlink()
    (tmp_path / 'switch_point.json').unlink()
    ckpt = tmp_path / 'gan' / 'gan_ckpt.pth'
    import torch
    st = torch.load(ckpt, weights_only=True); st['iter'] = 3; torch.save(st, ckpt)  # as if stopped at 3
    run_nogan(tmp_path, mini_train, mini_valid, QUICK)
    assert 'resuming the GAN phase at iteration 3/6' in capsys.readouterr().out
    assert (tmp_path / 'gan' / 'gen_000006.pth').exists() and (tmp_path / 'switch_point.json').exists()
    assert [r['iter'] for r in json.loads((tmp_path / 'gan' / 'gan_log.json').read_text())] == [3, 6]


def test_cli_bad_data(tmp_path, capsys):
    assert main(['train', '--quick', '--data', str(tmp_path), '--out', str(tmp_path / 'o')]) == 2
    assert f'{tmp_path}: no image files found' in capsys.readouterr().err
    assert not (tmp_path / 'o').exists()  # refused before the run made its folder


@pytest.mark.parametrize('args, message', [
    (['--gen-ema', '1.5'], 'EMA decay must be between 0 and 1'),
    (['--gen-loss', 'l1+stlips'], "unknown loss 'stlips' in 'l1+stlips'"),
    (['--arch', 'resnet'], "unknown generator 'resnet'"),
    (['--quality', '60', '20'], 'LOW <= HIGH'),
    (['--valid-quality', '0'], 'JPEG quality must be in 1..100, got 0'),
    (['--bs', '0'], 'bs must be at least 1'),
    (['--gen-minutes', '-1'], 'gen_minutes is a time budget'),
    (['--estimator-quantile', '1'], 'estimator_quantile is a quantile'),
    (['--p-clean', '1'], 'p_clean is a share'),
    (['--quality-bias', '0'], 'quality_bias must be above 0'),
    (['--p-underread', '1.5'], 'p_underread is a share'),
    (['--init', 'missing.safetensors'], 'missing.safetensors: no such weights file'),
    (['--init', 'truncated.safetensors'], 'truncated.safetensors: not a weights file'),
    (['--init', 'truncated.pth'], 'truncated.pth: not a weights file'),
])
def test_cli_refuses_bad_settings_before_writing(mini_train, tmp_path, capsys, args, message, monkeypatch):
    from artifact_removal import registry
    monkeypatch.chdir(tmp_path)
    for name in ('truncated.safetensors', 'truncated.pth'):  # the first 100 bytes of real weights
        (tmp_path / name).write_bytes(registry.model_path(registry.default_model()).read_bytes()[:100])
    assert main(['train', '--quick', '--data', str(mini_train), '--out', str(tmp_path / 'o'), *args]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / 'o').exists()


@pytest.mark.slow
def test_second_cycle_starts_from_chosen_generator(mini_train, mini_valid, tmp_path):
    import torch
    result = run_nogan(tmp_path, mini_train, mini_valid, QUICK, cycles=2)
    first = torch.load(tmp_path / 'generator.pth', weights_only=True)
    second_start = torch.load(tmp_path / 'cycle1' / 'gen_pretrain.pth', weights_only=True)
    assert all(torch.equal(first[k], second_start[k]) for k in first)
    assert (tmp_path / 'cycle1' / 'generator.pth').exists() and result['chosen']


@pytest.mark.slow
def test_cycle_from_release_weights_with_perceptual_gan_loss(mini_train, mini_valid, tmp_path):
    "gen_epochs=0 starts the critic and GAN phases from `init` as it is; gan_loss sets the GAN content loss."
    import torch
    from dataclasses import replace
    from artifact_removal import registry
    init = registry.model_path(registry.default_model())
    cfg = replace(QUICK, init=str(init), gen_epochs=0, gan_loss='l1+stlpips:0.5')
    result = run_nogan(tmp_path, mini_train, mini_valid, cfg)
    start = torch.load(tmp_path / 'gen_pretrain.pth', weights_only=True)
    assert all(torch.equal(start[k], v) for k, v in read_generator_state(init).items())
    assert result['chosen'] and (tmp_path / 'generator.pth').exists()


@pytest.mark.slow
@pytest.mark.parametrize('minutes', [0, 1])
def test_continued_run_logs_its_starting_weights_as_epoch_0(mini_train, mini_valid, tmp_path, monkeypatch, minutes):
    """With `init`, the validation log starts with the init's scores: the mark a continued run has to beat. With
    `gen_minutes` the probe's validation is that epoch 0: scored once, not again."""
    from artifact_removal import registry
    from artifact_removal.evaluate import ValidationScorer
    calls, scores = [], ValidationScorer.__call__
    monkeypatch.setattr(ValidationScorer, '__call__', lambda self, model: calls.append(model is not None) or scores(self, model))
    cfg = replace(QUICK, init=str(registry.model_path(registry.default_model())), gen_epochs=1, gen_minutes=minutes)
    pretrain_generator(tmp_path, mini_train, mini_valid, cfg)
    log = json.loads((tmp_path / 'gen_pretrain_valid.json').read_text())
    assert [r['epoch'] for r in log] == [0, 1] and log[0]['seconds'] == 0 and sum(calls) == 2  # models scored
    input_q10 = json.loads((tmp_path / 'gen_pretrain.json').read_text())['input_q10']
    assert log[0]['psnr'] > input_q10['psnr'] + 0.3  # the trained release weights, not a fresh network


def test_cpu_bf16_autocast_step(mini_train, mini_valid):
    "On the CPU, mixed precision is fastai-compatible bf16 autocast (fastai's own MixedPrecision is CUDA-only)."
    import torch
    from artifact_removal.data import get_pair_dls
    from artifact_removal.callbacks import CPUAutocast
    from artifact_removal.learner import gen_learner
    dls = get_pair_dls(mini_train, mini_valid, size=32, bs=4, n_patches=1, num_workers=0, seed=0)
    learn = gen_learner(dls, mixed_precision=True)
    assert any(isinstance(cb, CPUAutocast) for cb in learn.cbs)
    learn.fit(1, 1e-3)
    assert not torch.is_autocast_enabled('cpu')  # the context was left after every batch


def test_cli_generator_pretraining_only(mini_train, mini_valid, tmp_path, capsys):
    out = tmp_path / 'run'
    assert main(['train', '--quick', '--data', str(mini_train), '--valid', str(mini_valid), '--out', str(out),
                 '--cycles', '0', '--gen-loss', 'l1+stlpips:1']) == 0
    assert (out / 'gen_pretrain.pth').exists() and not (out / 'critic_data').exists()
    assert 'generator pretraining only' in capsys.readouterr().out


@pytest.mark.slow
def test_time_budget_sizes_the_epochs(mini_train, mini_valid, tmp_path, capsys):
    "--gen-minutes times a few steps, then sizes the epochs so gen_epochs of them fill the budget."
    import json
    out = tmp_path / 'run'
    args = ['train', '--quick', '--data', str(mini_train), '--valid', str(mini_valid), '--out', str(out),
            '--cycles', '0', '--gen-epochs', '2']
    assert main(args + ['--gen-minutes', '1']) == 0
    budget = json.loads((out / 'gen_budget.json').read_text())
    assert budget['n_patches'] >= 1 and budget['step_seconds'] > 0 and budget['epochs'] == 2
    assert f"{budget['n_patches']} patches per image and epoch" in capsys.readouterr().out
    summary = json.loads((out / 'gen_pretrain.json').read_text())
    assert summary['budget'] == budget
    losses = [row[0] for row in summary['history']['values']]  # whatever the load, each epoch trained on batches
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    (out / 'gen_pretrain.pth').unlink()  # a rerun resumes from the checkpoint with the size it chose, not a new probe
    assert main(args + ['--gen-minutes', '1']) == 0
    assert json.loads((out / 'gen_budget.json').read_text()) == budget
    assert main(args + ['--gen-minutes', '5']) == 2  # another budget is another run
    assert 'gen_minutes differ' in capsys.readouterr().err


def test_time_budget_too_small_to_train_is_refused(mini_train, mini_valid, tmp_path, capsys):
    "A budget that leaves no batch per epoch (validation fills it) is an error, not a run that trains on nothing."
    assert main(['train', '--quick', '--data', str(mini_train), '--valid', str(mini_valid), '--out', str(tmp_path / 'r'),
                 '--cycles', '0', '--gen-minutes', '0.01']) == 2
    assert 'leaves no time to train' in capsys.readouterr().err


def _write_detail_pairs(folder, n=48, size=64, seed=0):
    "Clean: smooth colour fields with fine grain (std 0.03). Generated: other such fields without the grain."
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(seed)
    for d in ('generated', 'clean'): (folder / d).mkdir(parents=True)
    yy, xx = np.mgrid[:size, :size] / size
    field = lambda: 0.5 + 0.3 * np.sin(rng.uniform(1, 6) * xx[..., None] + rng.uniform(1, 6) * yy[..., None]
                                       + rng.uniform(0, 6, 3))
    save = lambda a, d, i: Image.fromarray((np.clip(a, 0, 1) * 255).astype('uint8')).save(folder / d / f'{i}.png')
    for i in range(n):
        save(field() + rng.normal(0, 0.03, (size, size, 3)), 'clean', i)
        save(field(), 'generated', i)


def test_critic_learns_fine_detail(tmp_path):
    """The difference between a restored and a clean patch is a few hundredths of high-frequency detail; a
    spectral-normed critic on raw pixels stays at chance on it (loss ln 2). The critic must learn it quickly."""
    import torch
    from artifact_removal.data import get_critic_dls
    from artifact_removal.learner import critic_learner
    _write_detail_pairs(tmp_path)
    torch.manual_seed(0)
    dls = get_critic_dls(tmp_path, size=64, bs=16, valid_pct=0.25, seed=0, num_workers=0)
    learn = critic_learner(dls)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(8, 1e-3)
    loss, acc = learn.validate()
    assert acc > 0.9 and loss < 0.5


_GLOO_SHIM = """
import sys, torch
from fastai.distributed import DistributedDL
def _broadcast(self, t, rank):  # fastai sends these indices through NCCL (CUDA); gloo takes CPU tensors
    t = torch.LongTensor(t); torch.distributed.broadcast(t, rank); return t.tolist()
DistributedDL._broadcast = _broadcast
from artifact_removal.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_two_process_training_on_cpu(mini_train, mini_valid, tmp_path):
    """The README's multi-GPU path (fastai's distrib_ctx under accelerate) with two CPU processes (torchrun,
    gloo): both ranks train one model in DistributedDataParallel, only rank 0 writes. The one change is
    fastai's index broadcast, which is written for NCCL only."""
    import os
    import subprocess
    import sys
    pytest.importorskip('accelerate')
    out, shim = tmp_path / 'ddp', tmp_path / 'gloo_train.py'
    shim.write_text(_GLOO_SHIM)
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', str(shim),
           'train', '--quick', '--cycles', '0', '--data', str(mini_train), '--valid', str(mini_valid), '--out', str(out)]
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'ACCELERATE_USE_CPU': '1'}  # what `accelerate launch --cpu` sets
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'distributed: process 0 of 2' in r.stdout and 'distributed: process 1 of 2' in r.stdout
    scores = [re.sub(r'seconds [\d.]+, ', '', line) for line in r.stdout.splitlines() if line.startswith('validation:')]
    assert len(scores) == 4 and len(set(scores)) == 2  # each epoch scored alike on both ranks: one model, kept in step
    assert (out / 'gen_pretrain.pth').exists() and not list(out.glob('.*.part.*'))  # atomic_path's temporary names
    log = json.loads((out / 'gen_pretrain_valid.json').read_text())
    assert [row['epoch'] for row in log] == [1, 2]

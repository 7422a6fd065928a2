"""Cost of one training step on this machine, and whether data loading keeps up with it.

Times (median of `--steps` after 3 warm-up steps) a forward+backward+Adam step on a batch of 32 patches of
64 px for each generator config, in the default and the channels_last memory format, with L1 and with
L1 + ST-LPIPS; and the time the pair DataLoader takes per batch (decode, crop, flip, JPEG, collate) in the
main process. Prints a Markdown table.

    python benchmarks/step_time.py
"""
import argparse
import platform
import statistics
import time

import torch

from artifact_removal.data import get_pair_dls
from artifact_removal.losses import create_loss
from artifact_removal.models import GENERATOR_CONFIGS, create_generator


def step_time(model, loss, x, y, steps):
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    times = []
    for i in range(steps + 3):
        t = time.perf_counter()
        l = loss(model(x), y); opt.zero_grad(); l.backward(); opt.step()
        if i >= 3: times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--data', default='../shared/data/train')
    p.add_argument('--steps', type=int, default=8)
    a = p.parse_args()
    print(f'{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads\n')
    dls = get_pair_dls(a.data, size=64, bs=32, n_patches=4, num_workers=0, seed=0)
    it = iter(dls.train)
    next(it)
    t = time.perf_counter(); batches = [next(it) for _ in range(10)]
    data_s = (time.perf_counter() - t) / 10
    x, y = (torch.as_tensor(b) for b in batches[0])
    print('| config | loss | contiguous s/step | channels_last s/step |\n|---|---|---|---|')
    for name in GENERATOR_CONFIGS:
        for spec in ('l1', 'l1+stlpips'):
            loss = create_loss(spec)
            row = []
            for fmt in (torch.contiguous_format, torch.channels_last):
                torch.manual_seed(0)
                m = create_generator(name).train().to(memory_format=fmt)
                row.append(step_time(m, loss, x.contiguous(memory_format=fmt), y, a.steps))
            print(f'| `{name}` | {spec} | {row[0]:.3f} | {row[1]:.3f} |', flush=True)
    print(f'\nPair DataLoader, one batch of 32 patches in the main process: {data_s:.3f} s')


if __name__ == '__main__': main()

"""Which number format a network runs in on this hardware: fp32, or bf16/fp16 autocast where it is native.

Inference and training both ask here, so inference never imports the training modules to find out.
"""
from contextlib import nullcontext

import torch

__all__ = ['PRECISIONS', 'bf16_supported', 'choose_precision', 'autocast']

PRECISIONS = ('auto', 'fp32', 'bf16', 'fp16')
_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}


def bf16_supported(device=None) -> bool:
    """Whether bf16 autocast runs natively on `device` (default: CUDA when there is one, else the CPU): a CUDA GPU
    with bf16, or a CPU with AVX512-BF16 or AMX (elsewhere the CPU emulates it, slower than fp32)."""
    kind = torch.device(device).type if device is not None else 'cuda' if torch.cuda.is_available() else 'cpu'
    if kind == 'cuda': return torch.cuda.is_bf16_supported()
    return kind == 'cpu' and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def choose_precision(precision, device) -> str:
    """`precision` checked and 'auto' resolved for `device`: fp16 on CUDA, bf16 on a CPU that has it natively
    (the network in 0.6 of fp32's time there, issue 20; within 2/255 of fp32: tests/test_precision.py), fp32
    elsewhere."""
    if precision not in PRECISIONS:
        raise ValueError(f'precision is one of {", ".join(map(repr, PRECISIONS))}, not {precision!r}')
    device = torch.device(device)
    if precision == 'auto': return 'fp16' if device.type == 'cuda' else 'bf16' if bf16_supported(device) else 'fp32'
    if precision == 'fp16' and device.type == 'cpu':
        raise ValueError("precision 'fp16' is for GPUs (CPUs emulate it, slower than fp32); on the CPU use 'bf16' "
                         "or 'fp32'")
    return precision


def autocast(precision, device):
    "The autocast context of `precision` ('fp32': none) on `device`."
    if precision == 'fp32': return nullcontext()
    return torch.autocast(torch.device(device).type, dtype=_DTYPES[precision])

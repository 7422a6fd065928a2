#!/usr/bin/env bash
# Download, as wheels into DIR, what this package needs beyond PyTorch, timm and the scientific stack, for a
# machine that cannot reach a package index (a lent GPU machine, an air-gapped cluster):
#
#   scripts/wheels.sh DIR [PYTHON_VERSION]      e.g. scripts/wheels.sh .whl 3.12
#
# then carry DIR there and run `WHEELS=DIR scripts/train_runs.sh RUNS`.
set -euo pipefail
DIR=${1:?usage: scripts/wheels.sh DIR [PYTHON_VERSION]}; PY=${2:-3.12}
mkdir -p "$DIR"
platforms=(); for n in 17 27 28 31 34; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PY" --implementation cp \
  "${platforms[@]}" --platform manylinux2014_x86_64 -d "$DIR" \
  fastai fastcore fasttransform fastprogress fastdownload plum-dispatch beartype stlpips-pytorch lpips \
  pytorch-msssim av torchsummary
du -sh "$DIR"; ls "$DIR"

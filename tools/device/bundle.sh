#!/bin/bash
# Build .gpu/ (ignored by git) for a lent GPU machine, whose image has torch, timm, opencv, matplotlib and
# scikit-image but none of fastai, stlpips-pytorch or PyAV, and takes at most 64 MiB of working tree:
#   .gpu/site   the pure-Python packages copied from this venv (ST-LPIPS with its AlexNet weights only,
#               fastprogress 1.0.3, which needs no python-fasthtml), and stand-ins for PyAV and IPython
#   .gpu/data   train/: the 400 BSDS images of ../shared/data/train (its 80 Sun-Hays PNGs do not fit);
#               valid/: the first 40 images of ../shared/data/valid (the ones stage 1 validates on)
# Usage, from the repository root with the venv active: bash tools/device/bundle.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo '/.gpu/' >> .git/info/exclude; }
SP=$(python -c 'import site; print(site.getsitepackages()[0])')
rm -rf .gpu && mkdir -p .gpu/site .gpu/data/train .gpu/data/valid
for p in fastai fastcore fasttransform plum beartype fastdownload torchsummary stlpips_pytorch pytorch_msssim; do
  cp -r "$SP/$p" .gpu/site/
done
for d in fastai fastcore fasttransform plum_dispatch beartype fastdownload stlpips_pytorch; do cp -r "$SP"/$d-*.dist-info .gpu/site/; done
rm -f .gpu/site/stlpips_pytorch/weights/*/vgg*.pth
pip download -q --no-deps fastprogress==1.0.3 -d .gpu/wheel && python -m zipfile -e .gpu/wheel/fastprogress-1.0.3-py3-none-any.whl .gpu/site
rm -rf .gpu/wheel && cp -r tools/device/stubs/* .gpu/site/
find .gpu/site -name __pycache__ -prune -exec rm -rf {} +
cp ../shared/data/train/bsds_*.jpg .gpu/data/train/
python -c "
import shutil, sys; from artifact_removal.data import find_images
for f in find_images('../shared/data/valid')[:40]: shutil.copy(f, '.gpu/data/valid')"
du -sh .gpu

#!/bin/bash
# Build .gpu/ (ignored by git) for a lent GPU machine, whose image has torch, timm, opencv, matplotlib and
# scikit-image but none of fastai, stlpips-pytorch or PyAV, and takes at most 64 MiB of working tree:
#   .gpu/site.zip  the pure-Python packages copied from this venv (fastprogress 1.0.3, which needs no
#                  python-fasthtml), and stand-ins for PyAV and IPython, zipped: Python imports from a zip,
#                  and their 9 MB of source travel as 2
#   .gpu/site      ST-LPIPS with its AlexNet weights only (it opens them by file name, so it stays a folder)
#   .gpu/data      train/: the 400 BSDS images of ../shared/data/train and the first SUNHAYS (default 0) of its
#                  80 Sun-Hays PNGs as lossless WebP (the same pixels in 65% of the bytes; all 80 would take 51 MiB);
#                  valid/: the first VALID (default 100) images of ../shared/data/valid, which stage 1 scores
# Usage, from the repository root with the venv active: [VALID=40] [SUNHAYS=10] bash tools/device/bundle.sh
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
(cd .gpu/site && zip -qr9 ../site.zip . -x 'stlpips_pytorch/*' && find . -mindepth 1 -maxdepth 1 ! -name stlpips_pytorch -exec rm -rf {} +)
cp ../shared/data/train/bsds_*.jpg .gpu/data/train/
python -c "
import shutil, sys; from PIL import Image; from artifact_removal.data import find_images
for f in find_images('../shared/data/valid')[:int(sys.argv[1])]: shutil.copy(f, '.gpu/data/valid')
for f in sorted(find_images('../shared/data/train').filter(lambda f: f.suffix == '.png'))[:int(sys.argv[2])]:
    Image.open(f).save(f'.gpu/data/train/{f.stem}.webp', lossless=True, method=4)" "${VALID:-100}" "${SUNHAYS:-0}"
du -sh .gpu
mb=$(( ($(git ls-files -z | du -cb --files0-from=- | tail -1 | cut -f1) + $(du -sb .gpu | cut -f1)) >> 20 ))
echo "travels with the tracked files: $mb MiB of 64 (an --init file in .gpu/init adds its size)"
[ "$mb" -lt 62 ] || { echo "too big for the device's 64 MiB: fewer SUNHAYS or VALID" >&2; exit 1; }

#!/bin/bash
# On the GPU machine: every run listed in .gpu/runs.txt ("NAME train-options..." per line) side by side, each
# stopped by SIGINT after LIMIT seconds, a stopped run keeping its last epoch's weight average as
# gen_pretrain.pth; then the GPU speed benchmark. Each run folder (checkpoints left out) comes back as
# $OUT/NAME.tgz. Called as the device tool's command: bash tools/device/train.sh (carry: .gpu).
# SMOKE=1 adds tiny settings, to check the whole script on a CPU before spending device time; SPEED=0 skips
# the benchmark.
cd "$(dirname "$0")/../.."
export PYTHONPATH=$PWD/.gpu/site.zip:$PWD/.gpu/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 MPLBACKEND=Agg OMP_NUM_THREADS=1
# one thread per process: runs side by side with their loader workers on 2 cores (the device showed 2 to nproc)
# stalled for minutes with 2 each in a CPU rehearsal (SMOKE: 7 min against 50 s)
OUT=${OUT:-/tmp/gpu_out}; LIMIT=${LIMIT:-490}; mkdir -p "$OUT" runs
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1; nproc
  python3 -c "import torch, timm, fastai; print('torch', torch.__version__, 'timm', timm.__version__, 'fastai', fastai.__version__, 'cuda', torch.cuda.is_available())"; } > "$OUT/device.txt" 2>&1
cat "$OUT/device.txt"
EXTRA=(); [ -n "${SMOKE:-}" ] && EXTRA=(--size 32 --bs 8 --gen-epochs 2 --gen-minutes 0.7 --valid-images 3 --num-workers 1)
run() {
  local name=$1; shift
  timeout -s INT "$LIMIT" python3 -c "import sys; from artifact_removal.cli import main; sys.exit(main())" \
    train --data .gpu/data/train --valid .gpu/data/valid --out "runs/$name" --cycles 0 "$@" "${EXTRA[@]}" > "runs/$name.log" 2>&1
  echo "$name exit $? at $(date -u +%T)" | tee -a "$OUT/device.txt"
  local r=runs/$name
  [ -f "$r/gen_pretrain.pth" ] || [ ! -f "$r/gen_pretrain_ckpt.pth" ] || python3 -c "
import sys, torch; from artifact_removal.weights import read_generator_state
torch.save(read_generator_state(sys.argv[1]), sys.argv[2])" "$r/gen_pretrain_ckpt.pth" "$r/gen_pretrain.pth"
  tar czf "$OUT/$name.tgz" --exclude='*ckpt*' "$r" "runs/$name.log"
}
names=()
while read -r name args; do
  [ -z "$name" ] || [ "${name:0:1}" = '#' ] && continue
  names+=("$name"); read -ra argv <<< "$args"; run "$name" "${argv[@]}" &
done < .gpu/runs.txt
wait
for name in "${names[@]}"; do tr '\r' '\n' < "runs/$name.log" | grep 'validation\|time budget\|Error'; done
if [ "${SPEED:-1}" != 0 ]; then
  timeout 75 python3 benchmarks/restore_speed.py --skip-cpu --skip-50mp --threads 8 --repeat 5 > "$OUT/speed.txt" 2>&1
  echo "speed exit $? at $(date -u +%T)" >> "$OUT/device.txt"; grep '|' "$OUT/speed.txt"
fi
ls -la "$OUT"

#!/usr/bin/env bash
# Train the runs listed in RUNS side by side on this machine, then time restoration (GPU rows on a GPU).
#
#   scripts/train_runs.sh RUNS [OUT]
#
# RUNS has one run a line: NAME followed by `artifact-removal train` options (its run folder is runs/NAME);
# '#' starts a comment. Each run gets THREADS threads (default: the cores shared out) and, with LIMIT=seconds,
# is stopped by SIGINT after that long; a stopped run keeps its last finished epoch's weight average as
# gen_pretrain.pth. Logs and run folders (without checkpoints) are packed into OUT (default runs/out) as
# NAME.tgz. On a machine without network, install the carried wheels first:
#   WHEELS=.whl scripts/train_runs.sh RUNS      (see scripts/wheels.sh)
# SEQUENTIAL=1 trains the runs one after another instead (a queue for one core). SPEED=0 skips the speed
# benchmark; SMOKE=1 adds tiny settings to rehearse the whole script in a minute.
set -uo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:?usage: scripts/train_runs.sh RUNS [OUT]}; OUT=${2:-runs/out}; LIMIT=${LIMIT:-0}
mkdir -p "$OUT" runs
if [ -n "${WHEELS:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/site "$WHEELS"/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 MPLBACKEND=Agg
n_runs=$(grep -cv '^\s*\(#\|$\)' "$RUNS"); [ -n "${SEQUENTIAL:-}" ] && n_runs=1
export OMP_NUM_THREADS=${THREADS:-$(( $(nproc) / (n_runs > 0 ? n_runs : 1) > 0 ? $(nproc) / (n_runs > 0 ? n_runs : 1) : 1 ))}
{ date -u; nproc; nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"; } | tee "$OUT/machine.txt"
EXTRA=(); [ -n "${SMOKE:-}" ] && EXTRA=(--size 32 --bs 8 --gen-epochs 2 --gen-minutes 0.7 --valid-images 3 --num-workers 0)

train() {
  local name=$1; shift
  local limit=(); [ "$LIMIT" != 0 ] && limit=(timeout -s INT "$LIMIT")
  "${limit[@]}" python3 -m artifact_removal.cli train --out "runs/$name" --cycles 0 "$@" "${EXTRA[@]}" > "runs/$name.log" 2>&1
  echo "$name: exit $? at $(date -u +%T)" | tee -a "$OUT/machine.txt"
  local r=runs/$name
  if [ ! -f "$r/gen_pretrain.pth" ] && [ -f "$r/gen_pretrain_ckpt.pth" ]; then  # stopped: keep its last epoch
    python3 -c "import sys, torch; from artifact_removal.weights import read_generator_state
torch.save(read_generator_state(sys.argv[1]), sys.argv[2])" "$r/gen_pretrain_ckpt.pth" "$r/gen_pretrain.pth"
  fi
  tar czf "$OUT/$name.tgz" --exclude='*ckpt*' "$r" "runs/$name.log"
}

while read -r name args; do
  [ -z "$name" ] || [ "${name:0:1}" = '#' ] && continue
  read -ra argv <<< "$args"
  if [ -n "${SEQUENTIAL:-}" ]; then train "$name" "${argv[@]}"; else train "$name" "${argv[@]}" & fi
done < "$RUNS"
wait
grep -h 'validation:\|time budget\|Error' runs/*.log | tr '\r' '\n' | grep 'validation:\|time budget\|Error' | tail -40
if [ "${SPEED:-1}" != 0 ]; then python3 benchmarks/restore_speed.py --out "$OUT/speed.md" || echo "speed benchmark failed"; fi
ls -la "$OUT"

#!/usr/bin/env bash
# Every bench on one CUDA GPU, at sizes meant for a big one (an H200: the whole script is budgeted
# at 10 minutes there, each bench under a timeout that keeps it so), or with --smoke the same
# benches at tiny sizes on the CPU (seconds; tests/test_bench_gpu.py runs it).
#
#   bash bench/gpu.sh            # CUDA; stops at once, saying so, when torch sees no GPU
#   bash bench/gpu.sh --smoke    # CPU
#
# Each bench ends with `FIGURE <bench> [<device name>]: ...` lines; they are repeated together at
# the end. The Python is $PYTHON, else .venv/bin/python, else python3. Synthetic inputs only: a
# GPU machine has no fonts and no results/ folder. The checks below name any missing package;
# on the lent H200 image (Python 3.12, torch, sklearn, pandas, ... but no jsonschema, which the
# config validation of bench/train.py needs) carry these as wheels, fetched here with
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl jsonschema==4.26.0 \
#     jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1
# and installed there with
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
set -uo pipefail
cd "$(dirname "$0")/.."

mode=gpu
case "${1:-}" in
  --smoke) mode=smoke ;;
  "") ;;
  *) echo "usage: bash bench/gpu.sh [--smoke]" >&2; exit 2 ;;
esac

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PYTHONUNBUFFERED=1

missing=$("$PY" - <<'EOF'
import importlib.util
need = ["torch", "torchvision", "numpy", "scipy", "pandas", "yaml", "sklearn", "threadpoolctl", "jsonschema", "tqdm"]
print(" ".join(n for n in need if importlib.util.find_spec(n) is None))
EOF
)
if [ -n "$missing" ]; then
  echo "bench/gpu.sh: $PY lacks these Python packages: $missing" >&2
  exit 1
fi

if [ "$mode" = gpu ]; then
  if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "bench/gpu.sh: torch ($PY) sees no CUDA device; run 'bash bench/gpu.sh --smoke' for the CPU check" >&2
    exit 1
  fi
  DEV=(--device cuda)
else
  DEV=(--device cpu --threads 1)
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
failed=()
started=$SECONDS

# run NAME BUDGET_SECONDS SCRIPT ARGS...: one bench under a timeout; its output is kept for the summary
run() {
  local name=$1 budget=$2 t0=$SECONDS rc
  shift 2
  echo "== $name (budget ${budget} s): $PY $*"
  timeout --kill-after=5 "$budget" "$PY" "$@" 2>&1 | tee -a "$log"
  rc=${PIPESTATUS[0]}
  if [ "$rc" -ne 0 ]; then
    failed+=("$name (exit $rc$([ "$rc" -eq 124 ] && echo ", over its ${budget} s budget"))")
  fi
  echo "== $name: $((SECONDS - t0)) s"
}

if [ "$mode" = gpu ]; then
  # Budgets sum to 555 s (+5 s grace each): the whole script stays within 10 minutes on the GPU.
  # Task2Vec faithful, published code path vs our engines (same draws), at 32 and 84 px
  run task2vec-32px 85 bench/task2vec.py "${DEV[@]}" --size 32 --tasks 4 --rounds 2 \
    --methods faithful-loop,faithful-batched
  run task2vec-84px 115 bench/task2vec.py "${DEV[@]}" --size 84 --tasks 4 --rounds 2 \
    --methods faithful-loop,faithful-batched
  run task2vec-exact 40 bench/task2vec.py "${DEV[@]}" --size 84 --tasks 64 --rounds 1 --no-baseline \
    --methods exact
  # few-shot evaluation of a PT checkpoint: sklearn per episode (first 100) vs batched, all 2000
  run evaluate 55 bench/evaluate.py "${DEV[@]}" --n-episodes 2000 --straightforward-episodes 100 \
    --widths 64,160,320,640 --classes-per-domain 40 --images-per-class 20
  # training, published widths
  run train 70 bench/train.py "${DEV[@]}" --set 'widths=[64,160,320,640]' --set steps=200
  # replicates: one process a checkpoint vs groups of R, and vmapped PT steps; the study's widths
  run train-replicates 120 bench/train.py "${DEV[@]}" --set steps=40 --replicates 2,3,5 --singles 1
  # MAML adaptation, published widths at 84 px, 10 inner steps
  run maml 70 bench/maml.py "${DEV[@]}" --widths 64,160,320,640 --size 84 --channels 3 --episodes 600 \
    --loop-episodes 20 --steps 10
else
  run task2vec 60 bench/task2vec.py "${DEV[@]}" --size 32 --tasks 1 --rounds 1 --epoch-images 128 \
    --head-epochs 1 --methods faithful-loop,faithful-batched,exact
  run evaluate 60 bench/evaluate.py "${DEV[@]}" --n-episodes 12 --straightforward-episodes 3 \
    --widths 4,4,8,8 --classes-per-domain 10 --images-per-class 20
  run train 60 bench/train.py "${DEV[@]}" --set 'widths=[4,4,8,8]' --set steps=2 --heldout-episodes 5
  run train-replicates 90 bench/train.py "${DEV[@]}" --set 'widths=[4,4,8,8]' --set steps=2 --replicates 2 \
    --singles 1
  run maml 60 bench/maml.py "${DEV[@]}" --widths 4,4,8,8 --size 16 --episodes 4 --loop-episodes 2 --steps 2
fi

echo
echo "== figures ($mode, $((SECONDS - started)) s in all)"
grep '^FIGURE ' "$log" || true
if [ ${#failed[@]} -gt 0 ]; then
  printf 'bench/gpu.sh: failed: %s\n' "${failed[@]}" >&2
  exit 1
fi

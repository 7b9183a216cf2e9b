#!/usr/bin/env bash
# Every bench on one CUDA GPU, at sizes meant for a big one (an H200: the whole script is budgeted
# at 8 minutes there, each bench under a timeout that keeps it so), or with --smoke the same
# benches at tiny sizes on the CPU (seconds; tests/test_bench_gpu.py runs it).
#
#   bash bench/gpu.sh            # CUDA; stops at once, saying so, when torch sees no GPU
#   bash bench/gpu.sh --smoke    # CPU
#
# Each bench ends with `FIGURE <bench> [<device name>]: ...` lines; they are repeated together at
# the end. The Python is $PYTHON, else .venv/bin/python, else python3 (a GPU machine's image
# holds PyTorch there; jsonschema, which bench/train.py needs, may have to be carried as wheels).
# Synthetic inputs only: a GPU machine has no fonts and no results/ folder.
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
  timeout --kill-after=10 "$budget" "$PY" "$@" 2>&1 | tee -a "$log"
  rc=${PIPESTATUS[0]}
  if [ "$rc" -ne 0 ]; then
    failed+=("$name (exit $rc$([ "$rc" -eq 124 ] && echo ", over its ${budget} s budget"))")
  fi
  echo "== $name: $((SECONDS - t0)) s"
}

if [ "$mode" = gpu ]; then
  # Task2Vec faithful, published code path vs our engines (same draws), at 32 and 84 px
  run task2vec-32px 90 bench/task2vec.py "${DEV[@]}" --size 32 --tasks 8 --rounds 2 \
    --methods faithful-loop,faithful-batched
  run task2vec-84px 120 bench/task2vec.py "${DEV[@]}" --size 84 --tasks 8 --rounds 2 \
    --methods faithful-loop,faithful-batched
  run task2vec-exact 45 bench/task2vec.py "${DEV[@]}" --size 84 --tasks 64 --rounds 1 --no-baseline \
    --methods exact
  # few-shot evaluation of a PT checkpoint: sklearn per episode (first 100) vs batched, all 2000
  run evaluate 60 bench/evaluate.py "${DEV[@]}" --n-episodes 2000 --straightforward-episodes 100 \
    --widths 64,160,320,640 --classes-per-domain 40 --images-per-class 20
  # training, published widths
  run train 75 bench/train.py "${DEV[@]}" --set 'widths=[64,160,320,640]' --set steps=200
  # MAML adaptation, published widths at 84 px, 10 inner steps
  run maml 75 bench/maml.py "${DEV[@]}" --widths 64,160,320,640 --size 84 --channels 3 --episodes 600 \
    --loop-episodes 20 --steps 10
else
  run task2vec 60 bench/task2vec.py "${DEV[@]}" --size 32 --tasks 1 --rounds 1 --epoch-images 128 \
    --head-epochs 1 --methods faithful-loop,faithful-batched,exact
  run evaluate 60 bench/evaluate.py "${DEV[@]}" --n-episodes 12 --straightforward-episodes 3 \
    --widths 4,4,8,8 --classes-per-domain 10 --images-per-class 20
  run train 60 bench/train.py "${DEV[@]}" --set 'widths=[4,4,8,8]' --set steps=2 --heldout-episodes 5
  run maml 60 bench/maml.py "${DEV[@]}" --widths 4,4,8,8 --size 16 --episodes 4 --loop-episodes 2 --steps 2
fi

echo
echo "== figures ($mode, $((SECONDS - started)) s in all)"
grep '^FIGURE ' "$log" || true
if [ ${#failed[@]} -gt 0 ]; then
  printf 'bench/gpu.sh: failed: %s\n' "${failed[@]}" >&2
  exit 1
fi

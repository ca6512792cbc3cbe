#!/usr/bin/env bash
# Every GPU check of BENCHMARKS.md in one go, for a short lease of a GPU machine (each step time-limited,
# a failed step does not stop the others). Logs and JSON results go to $OUT (default /tmp/ffneuro-gpu).
#
#   OUT=/tmp/out bash benchmarks/gpu_session.sh DATA      # DATA: a root holding mnist/ (the IDX files)
#
# Installs this checkout (or the wheel WHEEL=...) with the machine's own torch (no downloads: --no-deps).
set -uo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
DATA="$(cd "${1:-$REPO/.data}" && pwd)"
OUT="${OUT:-/tmp/ffneuro-gpu}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=python3

# a wheel built elsewhere (WHEEL=path) needs no build backend on this machine
"$PY" -m pip install -q --no-deps --force-reinstall "${WHEEL:-$REPO}" > "$OUT/install.log" 2>&1 \
  || "$PY" -m pip install -q --no-deps --no-build-isolation "$REPO" >> "$OUT/install.log" 2>&1 \
  || { echo "install failed"; tail -n 20 "$OUT/install.log"; exit 1; }
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
"$PY" -c "import torch, ffneuro; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'ffneuro', ffneuro.__version__)" \
  | tee -a "$OUT/gpu.txt"
cd "$(mktemp -d)"   # not the repo root: the installed package must be the one imported

step() {  # step NAME SECONDS COMMAND...: run it, keep its log, show its tail
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  echo "== $name: exit $? in $((SECONDS - t0)) s"
  grep -v '^USDT' "$OUT/$name.log" | tail -n "${TAIL:-8}"
}

# FF step against BP step on the paper network, same process (expected about 4/3 for the pure FF step)
step step_cost_fp32 90 "$PY" "$REPO/benchmarks/step_cost.py" --preset paper-mnist --batch-size 50 --steps 50 --device cuda
step step_cost_fp32_b500 90 "$PY" "$REPO/benchmarks/step_cost.py" --preset paper-mnist --batch-size 500 --steps 30 --device cuda
step step_cost_bf16 90 "$PY" "$REPO/benchmarks/step_cost.py" --preset paper-mnist --batch-size 50 --steps 50 --device cuda --precision bf16
# the memory model against the CUDA caching allocator's peak (one real step per network)
TAIL=6 step memory 120 "$PY" "$REPO/benchmarks/memory_curve.py" --depths 3,6,12 --batch 50 --measure --device cuda
# the paper's setting on the GPU: 2 epochs (of a 2-epoch schedule) on full MNIST, images/s and accuracy
TAIL=6 step paper_mnist 240 ffneuro train --preset paper-mnist --device cuda --epochs 2 --data-dir "$DATA" --out paper.h5 --json
"$PY" - paper.h5 > "$OUT/paper_mnist.json" <<'EOF' && cat "$OUT/paper_mnist.json"
import json, sys
from ffneuro.store import read_run
r = read_run(sys.argv[1])
print(json.dumps({"images_per_s": r.metrics["images_per_s"].tolist(), "epoch_train_time_s": r.metrics["epoch_train_time_s"].tolist(),
                  "val": {k: r.metrics[k].tolist() for k in r.metrics if k.startswith("val_acc")},
                  "test": {k: v for k, v in r.groups["test"].items() if k != "attrs"}, "env": r.environment}))
EOF
# our fastest MNIST preset, whole, on the GPU
TAIL=4 step mnist_fast 240 ffneuro train --preset mnist-fast --device cuda --data-dir "$DATA" --out fast.h5 --json
# resume on a GPU: kill -9 after an epoch, resume, compare with one go (cuDNN may differ in the last bits)
ARGS=(--preset mnist-small --device cuda --data-dir "$DATA" --train-limit 10000 --epochs 3)
step resume_one 120 ffneuro -q train "${ARGS[@]}" --out one.h5
( ffneuro -q train "${ARGS[@]}" --out two.h5 > "$OUT/resume_two.log" 2>&1 & echo $! > two.pid )
for _ in $(seq 1 600); do
  "$PY" -c "from ffneuro.store import read_run; import sys; sys.exit(read_run('two.h5').epochs_done < 1)" 2>/dev/null && break
  sleep 0.1
done
kill -9 "$(cat two.pid)"; sleep 1
step resume_two 120 ffneuro -q train --resume two.h5
"$PY" - <<'EOF' | tee "$OUT/resume_compare.json"
import json
import numpy as np
from ffneuro.store import read_run
a, b = read_run("one.h5"), read_run("two.h5")
wa, wb = a.weights(), b.weights()
print(json.dumps({"status": b.status, "epochs": int(b.epochs_done),
                  "max_abs_weight_diff": max(float(np.abs(wa[k] - wb[k]).max()) for k in wa),
                  "bit_identical": all(np.array_equal(wa[k], wb[k]) for k in wa),
                  "test_one": {k: v for k, v in a.groups["test"].items() if k != "attrs"},
                  "test_two": {k: v for k, v in b.groups["test"].items() if k != "attrs"}}))
EOF
echo "== done"

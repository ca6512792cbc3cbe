#!/usr/bin/env bash
# BENCHMARKS.md section 11: the FF variants on 2 CPU cores.
#   bash benchmarks/variants.sh DATA_DIR [OUT_DIR] [targets|table|all]
# targets: our fast presets on their full datasets (MNIST, Fashion-MNIST, CIFAR-10), and mnist-fast's BP twin
#          at the same epochs; every run's config was chosen on validation, and it is tested once at its end.
# table:   every variant on the same first 20,000 MNIST training images (validation: the last 10,000),
#          1 and 2 epochs: the published-setting studies' cpu20k budget, the paper's recipe (mnist-small)
#          and mnist-fast with its BP twin; then one table (benchmarks/variant_table.py).
# Runs one at a time with OMP_NUM_THREADS=2; a finished run file is not retrained (delete it to redo).
set -euo pipefail
data=${1:?usage: variants.sh DATA_DIR [OUT_DIR] [targets|table|all]}
out=${2:-runs/bench}
what=${3:-all}
export OMP_NUM_THREADS=2
mkdir -p "$out/targets" "$out/table"

train() {  # train OUT.h5 ARGS...: skip a complete run, else (re)train it and print its JSON summary line
  local file=$1; shift
  if [ -f "$file" ] && ffneuro runs show "$file" --json 2>/dev/null | grep -q '"status": "complete"'; then
    echo "$file: complete, kept"; return
  fi
  ffneuro -q train "$@" --data-dir "$data" --out "$file" --force --json > "${file%.h5}.json"
  python - "${file%.h5}.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"{d['run']}: {d['algo']} epochs {d['epochs']}  wall {d['wall_time_s']:.0f} s  val " +
      "  ".join(f"{k} {v:.4f}" for k, v in d["val_acc"].items()) + "  test " +
      "  ".join(f"{k} {v:.4f}" for k, v in d["test_acc"].items()))
PY
}

if [ "$what" = targets ] || [ "$what" = all ]; then
  train "$out/targets/mnist-fast.h5" --preset mnist-fast
  # the BP twin: the same blocks trained end to end with one Adam (lr 1e-3), linear head only
  train "$out/targets/mnist-fast-bp.h5" --preset mnist-fast --algo bp --readout linear --lr 1e-3
  train "$out/targets/fashion-mnist-fast.h5" --preset fashion-mnist-fast
  train "$out/targets/cifar10-fast.h5" --preset cifar10-fast
fi

if [ "$what" = table ] || [ "$what" = all ]; then
  ffneuro -q study run hinton-fc-mnist,cwcomp-mnist,trifecta-mnist --budget cpu20k --out-dir "$out/table" \
    --data-dir "$data"
  for epochs in 1 2; do
    for preset in mnist-small mnist-fast; do
      train "$out/table/$preset-e$epochs.h5" --preset "$preset" --train-limit 20000 --val-size 10000 --epochs "$epochs"
    done
    train "$out/table/mnist-fast-bp-e$epochs.h5" --preset mnist-fast --algo bp --readout linear --lr 1e-3 \
      --train-limit 20000 --val-size 10000 --epochs "$epochs"
  done
  python benchmarks/variant_table.py "$out/table"
  for study in hinton-fc-mnist cwcomp-mnist trifecta-mnist; do
    ffneuro study table "$study" "$out/table" --budget cpu20k
  done
fi

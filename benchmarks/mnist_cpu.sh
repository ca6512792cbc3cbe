#!/usr/bin/env bash
# The CPU benchmark of BENCHMARKS.md: the mnist-small preset trained with FF, then its BP twin, on the
# full 50,000/10,000 split; each prints a JSON summary (accuracy per readout, wall time) into OUT/.
#   bash benchmarks/mnist_cpu.sh DATA_DIR [OUT_DIR]
set -euo pipefail
data=${1:?usage: mnist_cpu.sh DATA_DIR [OUT_DIR]}
out=${2:-benchmarks/out}
mkdir -p "$out"
for algo in ff bp; do
  # BP gets the usual Adam lr for end-to-end training; FF keeps the preset's larger one.
  lr=(); [ "$algo" = bp ] && lr=(--lr 1e-3)
  ffneuro -q train --preset mnist-small --algo "$algo" "${lr[@]}" --data-dir "$data" \
    --out "$out/mnist-small-$algo.h5" --force --json > "$out/mnist-small-$algo.json"
  python - "$out/mnist-small-$algo.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"{d['algo']:3s} epochs {d['epochs']}  wall {d['wall_time_s']:.0f} s  test " +
      "  ".join(f"{k} {v:.4f}" for k, v in d["test_acc"].items()))
PY
done

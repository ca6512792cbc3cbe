#!/usr/bin/env bash
# Issue 19's CPU record on MNIST: the mnist-fast preset (FF, no gradient crosses units) and its BP twin on
# the same budget (the preset's epochs, augment and per-step lr cooling; BP takes Adam's usual lr 1e-3 for
# the whole network and its linear head only), each on the 50,000/10,000 split, the test set read once at
# the end. Prints the validation curve per epoch, the training seconds per epoch, the wall time, and whether
# the run stayed within the record's 15 minutes. Meant for the idle 2-core VM: run nothing else meanwhile.
#   bash benchmarks/records.sh DATA_DIR [OUT_DIR] [ff|bp|both] [EXTRA TRAIN FLAGS...]
# (extra flags only for a smoke test, e.g. --dataset synthetic --epochs 1 --widths 8,8,8)
set -euo pipefail
data=${1:?usage: records.sh DATA_DIR [OUT_DIR] [ff|bp|both]}
out=${2:-runs/records}
what=${3:-both}
extra=("${@:4}")
preset=${PRESET:-mnist-fast}
case $preset in
  mnist-fast) minutes=15 ;; fashion-mnist-fast) minutes=30 ;; cifar10-fast) minutes=60 ;;
  *) echo "records.sh: no record time for preset $preset (mnist-fast, fashion-mnist-fast, cifar10-fast)" >&2; exit 2 ;;
esac
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
mkdir -p "$out"

run() {  # run NAME ARGS...: train OUT/NAME.h5 from scratch, then print its curve and summary
  local name=$1; shift
  ffneuro -q train --preset "$preset" "$@" ${extra[@]+"${extra[@]}"} --data-dir "$data" --out "$out/$name.h5" --force --json \
    > "$out/$name.json"
  ffneuro runs export "$out/$name.h5" --format json --out "$out/$name-epochs.json" --force
  python - "$out/$name.json" "$out/$name-epochs.json" "$minutes" <<'PY'
import json, sys
d, epochs, minutes = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), int(sys.argv[3])
for e in epochs:
    val = "  ".join(f"{k[8:]} {v:.4f}" for k, v in e.items() if k.startswith("val_acc_"))
    print(f"  epoch {e['epoch']:2d}  val {val}  train {e['epoch_train_time_s']:.0f} s  wall {e['wall_time_s']:.0f} s")
wall = d["wall_time_s"]
print(f"{d['run']}: {d['algo']} epochs {d['epochs']}  wall {wall:.0f} s ({wall / 60:.1f} min, "
      f"{'within' if wall <= 60 * minutes else 'OVER'} {minutes} min)  test " +
      "  ".join(f"{k} {v:.4f}" for k, v in d["test_acc"].items()))
PY
}

case $what in ff|both) run "$preset" ;; esac
case $what in bp|both) run "$preset-bp" --algo bp --readout linear --lr 1e-3 ;; esac

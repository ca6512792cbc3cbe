#!/usr/bin/env bash
# The paper's studies at the CPU budgets of BENCHMARKS.md section 10: every MNIST study at budget cpu,
# then the CIFAR-10 shortcut check at budget cifar10-cpu, each printed as a table with the paper's
# numbers beside it. Resumable: rerun after a stop and finished points are skipped.
#   bash benchmarks/paper_studies.sh MNIST_DATA_DIR CIFAR_DATA_DIR [OUT_DIR]
# (CIFAR_DATA_DIR: ../shared/datasets/prepare cifar10 DIR builds it.)
set -euo pipefail
mnist=${1:?usage: paper_studies.sh MNIST_DATA_DIR CIFAR_DATA_DIR [OUT_DIR]}
cifar=${2:?usage: paper_studies.sh MNIST_DATA_DIR CIFAR_DATA_DIR [OUT_DIR]}
out=${3:-benchmarks/out/studies}
ffneuro -q study run all --budget cpu --out-dir "$out/cpu" --data-dir "$mnist"
ffneuro -q study run shortcut --budget cifar10-cpu --out-dir "$out/cifar10-cpu" --data-dir "$cifar"
for name in readout labelset pooling hyper strength width; do
  ffneuro study table "$name" "$out/cpu" --budget cpu
  echo
done
ffneuro study table shortcut "$out/cifar10-cpu" --budget cifar10-cpu
if python -c "import matplotlib" 2>/dev/null; then
  for name in strength width hyper; do
    ffneuro study plot "$name" "$out/cpu" --budget cpu --out "$out/$name.png"
  done
fi

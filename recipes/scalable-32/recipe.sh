#!/usr/bin/env bash
# Recipe of the shipped scalable fingerprinting network `scalable-32`
# (src/ganprint/assets/models/scalable-32): Fashion-MNIST at 32x32, 128-bit fingerprints, the cpu32
# preset, seed 0. Run from the project root where ganprint is installed and the Debian package
# dataset-fashion-mnist is present. On 2 CPU cores (~45 images/s) 600 kimg take about 4 hours;
# Ctrl-C stops with a checkpoint and `bash recipes/scalable-32/recipe.sh` continues the run.
#
#   bash recipes/scalable-32/recipe.sh [WORK_DIR] [TOTAL_KIMG]
set -euo pipefail
work=${1:-runs/scalable-32-recipe}
total_kimg=${2:-600}
mkdir -p "$work"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

# 1. The training set: the 60,000 Fashion-MNIST training images, centre-cropped and resized to 32x32.
if [ ! -f "$work/fashion-mnist-32.zip" ]; then
    ganprint dataset create-fashion-mnist "$work/fashion-mnist-32.zip" --resolution 32
fi

# 2. Train (or continue the earlier run of this recipe).
run=$(ls -d "$work"/0*-scalable-cpu32-32px-128b 2>/dev/null | tail -n 1 || true)
if [ -n "$run" ] && [ -f "$run/checkpoint.pt" ]; then
    ganprint scalable train --resume "$run" --total-kimg "$total_kimg"
else
    ganprint scalable train --data "$work/fashion-mnist-32.zip" --output-dir "$work" --preset cpu32 \
        --watermark-size 128 --total-kimg "$total_kimg" --seed 0 --metrics-kimg 10 --snapshot-kimg 50
    run=$(ls -d "$work"/0*-scalable-cpu32-32px-128b | tail -n 1)
fi

# 3. Check the latest snapshot on 10,000 generated PNG-quantised images, then ship it.
snapshot=$(ls -d "$run"/network-snapshot-* | tail -n 1)
ganprint scalable metrics --network "$snapshot" --num-images 10000 --output "$run/metrics-final.json"
rm -rf src/ganprint/assets/models/scalable-32
mkdir -p src/ganprint/assets/models
cp -r "$snapshot" src/ganprint/assets/models/scalable-32
echo "shipped $snapshot as scalable-32"

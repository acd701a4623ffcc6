#!/usr/bin/env bash
# Recipe of the shipped scalable fingerprinting network `scalable-32`
# (src/ganprint/assets/models/scalable-32): Fashion-MNIST at 32x32, 128-bit fingerprints, the cpu32
# preset (F learning rate 0.01, gamma 0.1, code-loss weight 10; given explicitly below so that the
# recipe does not depend on the preset's defaults), seed 0. Run from the project root where ganprint
# is installed and the Debian package dataset-fashion-mnist is present. On 2 CPU cores (~125
# images/s when nothing else runs) 600 kimg take about 80 minutes; Ctrl-C stops with a checkpoint and
# running the recipe again continues the run exactly (the shipped run was resumed twice).
# TOTAL_KIMG: the shipped snapshot's kimg is in its config.json ("training": {"kimg": ...}).
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
        --watermark-size 128 --decoder-lr 0.01 --gamma 0.1 --c-reconstruction-weight 10 \
        --total-kimg "$total_kimg" --seed 0 --metrics-kimg 4 --snapshot-kimg 20 --tick-kimg 1
    run=$(ls -d "$work"/0*-scalable-cpu32-32px-128b | tail -n 1)
fi

# 3. Check the latest snapshot on 10,000 generated PNG-quantised images, then ship it.
snapshot=$(ls -d "$run"/network-snapshot-* | tail -n 1)
ganprint scalable metrics --network "$snapshot" --data "$work/fashion-mnist-32.zip" --num-images 10000 \
    --fid-weights stand-in --output "$run/metrics-final.json"
# 4. Ship it with half-precision weights (11 MB -> 5.5 MB; loading casts them back to float32), and
#    measure the shipped copy the same way.
rm -rf src/ganprint/assets/models/scalable-32
mkdir -p src/ganprint/assets/models/scalable-32
cp "$snapshot/config.json" src/ganprint/assets/models/scalable-32/
python - "$snapshot/model.safetensors" src/ganprint/assets/models/scalable-32/model.safetensors <<'PY'
import sys
from safetensors.torch import load_file, save_file
weights = load_file(sys.argv[1])
save_file({k: v.half() if v.is_floating_point() else v for k, v in weights.items()}, sys.argv[2])
PY
ganprint scalable metrics --network scalable-32 --data "$work/fashion-mnist-32.zip" --num-images 10000 \
    --fid-weights stand-in --output "$run/metrics-shipped.json"
echo "shipped $snapshot as scalable-32"

#!/usr/bin/env bash
# Recipe of the shipped scalable fingerprinting network `scalable-32`
# (src/ganprint/assets/models/scalable-32): Fashion-MNIST at 32x32, 128-bit fingerprints, the cpu32
# preset (carrier maps, F learning rate 0.01, gamma 1, code-loss weight 10, F reading both codes
# through 8-bit rounding; the training flags are given explicitly below so that the recipe does not
# depend on the preset's defaults), seed 0, then
# the decoder tuned alone on the final snapshot. Run from the project root where ganprint is
# installed and the Debian package dataset-fashion-mnist is present. On one CPU thread (~65
# images/s) 300 kimg take about 80 minutes, 2 threads are faster; Ctrl-C stops with a checkpoint
# and running the recipe again continues the run exactly.
# TOTAL_KIMG: the shipped snapshot's kimg is in its config.json ("training": {"kimg": ...}).
#
# NAME, AUGMENT, BITS, CODE_WEIGHT and CONSISTENCY_WEIGHT (environment) make the immunized variants:
# recipes/scalable-32-immunized/recipe.sh and recipes/scalable-32-robust/recipe.sh. Z_STYLES, CARRIER_STD,
# PAIRED_WEIGHT and SEED make the fidelity arms of docs/scalable.md ("Fidelity"), e.g. the chosen one,
# seed 1 (SHIP=false: train, tune and measure, without replacing the shipped model):
#   SHIP=false Z_STYLES=true CARRIER_STD=0.1 CONSISTENCY_WEIGHT=30 PAIRED_WEIGHT=10 SEED=1 \
#       bash recipes/scalable-32/recipe.sh runs/fid-s1 200
#
#   bash recipes/scalable-32/recipe.sh [WORK_DIR] [TOTAL_KIMG]
set -euo pipefail
name=${NAME:-scalable-32}
work=${1:-runs/$name-recipe}
total_kimg=${2:-300}
bits=${BITS:-128}                # fingerprint length
code_weight=${CODE_WEIGHT:-10}   # weight of F's code loss against the adversarial loss
consistency_weight=${CONSISTENCY_WEIGHT:-2}  # weight of G(z, c) ~ G(z, c'): keeps z deciding the content
z_styles=${Z_STYLES:-false}      # z also makes styles at every layer (beyond the paper)
carrier_std=${CARRIER_STD:-1}    # init std of the carrier maps the code's styles weight
paired_weight=${PAIRED_WEIGHT:-0}  # weight of F's code loss on logit differences (G(z, c) vs G(z, c'))
seed=${SEED:-0}
ship=${SHIP:-true}
mkdir -p "$work"
# Immunized training: F reads G's images through these perturbations, and is tuned through them.
train_augment=() tune_augment=()
if [ -n "${AUGMENT:-}" ]; then
    train_augment=(--augment "$AUGMENT" --augment-ramp 2000) tune_augment=(--augment "$AUGMENT")
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

# 1. The training set: the 60,000 Fashion-MNIST training images, centre-cropped and resized to 32x32.
if [ ! -f "$work/fashion-mnist-32.zip" ]; then
    ganprint dataset create-fashion-mnist "$work/fashion-mnist-32.zip" --resolution 32
fi

# 2. Train (or continue the earlier run of this recipe).
run=$(ls -d "$work"/0*-scalable-cpu32-32px-${bits}b 2>/dev/null | tail -n 1 || true)
if [ -n "$run" ] && [ -f "$run/checkpoint.pt" ]; then
    ganprint scalable train --resume "$run" --total-kimg "$total_kimg"
else
    ganprint scalable train --data "$work/fashion-mnist-32.zip" --output-dir "$work" --preset cpu32 \
        --watermark-size "$bits" --decoder-lr 0.01 --gamma 1 --c-reconstruction-weight "$code_weight" \
        --consistency-weight "$consistency_weight" --decode-both true --decode-uint8 true "${train_augment[@]}" \
        --z-styles "$z_styles" --carrier-std "$carrier_std" --paired-code-weight "$paired_weight" \
        --total-kimg "$total_kimg" --seed "$seed" --metrics-kimg 20 --snapshot-kimg 20 --tick-kimg 1
    run=$(ls -d "$work"/0*-scalable-cpu32-32px-${bits}b | tail -n 1)
fi

# 3. Tune the decoder alone on the final snapshot's generator (8-bit images; G is unchanged).
snapshot=$(ls -d "$run"/network-snapshot-* | tail -n 1)
ganprint scalable tune-decoder --network "$snapshot" --output "$run/tuned" --kimg 40 --lr 0.001 --batch 32 \
    "${tune_augment[@]}" --seed "$seed" --overwrite

# 4. Check it on 10,000 generated PNG-quantised images, then ship it with half-precision weights
#    (loading casts them back to float32), and measure the shipped copy the same way.
ganprint scalable metrics --network "$run/tuned" --data "$work/fashion-mnist-32.zip" --num-images 10000 \
    --fid-weights stand-in --output "$run/metrics-final.json"
if [ "$ship" != true ]; then
    echo "trained and measured $run/tuned (not shipped: SHIP=$ship)"
    exit 0
fi
rm -rf "src/ganprint/assets/models/$name"
mkdir -p "src/ganprint/assets/models/$name"
cp "$run/tuned/config.json" "src/ganprint/assets/models/$name/"
python - "$run/tuned/model.safetensors" "src/ganprint/assets/models/$name/model.safetensors" <<'PY'
import sys
from safetensors.torch import load_file, save_file
weights = load_file(sys.argv[1])
save_file({k: v.half() if v.is_floating_point() else v for k, v in weights.items()}, sys.argv[2])
PY
ganprint scalable metrics --network "$name" --data "$work/fashion-mnist-32.zip" --num-images 10000 \
    --fid-weights stand-in --output "$run/metrics-shipped.json"
echo "shipped $run/tuned ($snapshot with its decoder tuned) as $name"

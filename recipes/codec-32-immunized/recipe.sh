#!/usr/bin/env bash
# Recipe of the immunized codec `codec-32-immunized` (src/ganprint/assets/models/codec-32-immunized):
# the data of recipes/codec-32 (same script, same seed), trained through the default differentiable
# perturbations (noise, blur, JPEG, crop, brightness, contrast, saturation; docs/robustness.md),
# ramped in over the first 2000 steps. Targets (issue 6): bit accuracy >= 0.95 under JPEG 75, noise
# 0.05, blur 1, crop 90%, brightness +-30% at PSNR >= 32 dB; check with
#   python benchmarks/bench_robustness.py --immunized codec-32-immunized --original codec-32
# Differences from codec-32, and why:
# - residual RMS 0.02 (~34 dB) instead of 0.016: more energy for the attacks to eat, still above 32 dB;
# - --anneal-accuracy 0.98: the curriculum reads accuracy on perturbed batches, which stays below the
#   0.995 that clean batches reach, and would otherwise never lower the residual to its target;
# - 8000 steps instead of 4000: the decoder has more to learn.
# Run from the project root in an environment where ganprint is installed with its [assets] extra
# (`pip install -e ".[assets]"`) and the Debian package dataset-fashion-mnist is present.
# Measured: 85 minutes on one CPU thread (2026-11-30, with other jobs on the second core).
set -euo pipefail
work=${1:-runs/codec-32-immunized-recipe}
mkdir -p "$work"
if [ ! -f "$work/train.zip" ]; then
    python recipes/codec-32/make_training_set.py "$work/train.zip" --crops 16000 --fashion 4000 --seed 0
fi
ganprint codec train --data_dir "$work/train.zip" --output_dir "$work" --arch ganprint \
    --image_resolution 32 --fingerprint_length 100 --batch_size 64 --steps 8000 --lr 1e-3 \
    --residual-rms 0.02 --start-rms 0.1 --anneal-accuracy 0.98 \
    --augment default --augment-ramp 2000 \
    --seed 0 --snapshot-every 500 --eval-every 100
run=$(ls -d "$work"/0*-codec-ganprint-32px-100b | tail -n 1)
rm -rf src/ganprint/assets/models/codec-32-immunized
mkdir -p src/ganprint/assets/models
cp -r "$run/final" src/ganprint/assets/models/codec-32-immunized
echo "shipped $run/final as codec-32-immunized"
# Calibrate on the clean training images (per-bit bias -> calibrated threshold), as codec-32.
ganprint calibrate --model src/ganprint/assets/models/codec-32-immunized --data_dir "$work/train.zip" -q --overwrite

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
# - then a fine-tuning run from that codec (`--init`, 4000 steps, lr 3e-4, seed 1) at residual RMS
#   0.0245 (~32.2 dB, the most energy the 32 dB target allows) through the perturbations of the
#   targets only (JPEG down to quality 60, crops of up to 15%, noise up to 0.07, blur, brightness):
#   noise 0.05 and crop 90% went from 0.94 / 0.90 to >= 0.95; JPEG 75 stays the hard one.
# Run from the project root in an environment where ganprint is installed with its [assets] extra
# (`pip install -e ".[assets]"`) and the Debian package dataset-fashion-mnist is present.
# Measured (2026-11-30, one CPU thread each, other jobs on the second core): 85 minutes for the first
# run, 44 for the fine-tuning; python benchmarks/bench_robustness.py: JPEG 75 0.810, noise 0.05 0.959,
# blur 1 0.980, crop 90% 0.958, brightness 0.994/0.977, PSNR 32.2 dB.
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
ganprint codec train --data_dir "$work/train.zip" --output_dir "$work/fine-tune" --init "$run/final" --arch ganprint \
    --image_resolution 32 --fingerprint_length 100 --batch_size 64 --steps 4000 --lr 3e-4 \
    --residual-rms 0.0245 --start-rms 0.0245 \
    --augment jpeg=40,crop=0.15,noise=0.07,blur,brightness --augment-ramp 200 \
    --seed 1 --snapshot-every 500 --eval-every 100
run=$(ls -d "$work"/fine-tune/0*-codec-ganprint-32px-100b | tail -n 1)
rm -rf src/ganprint/assets/models/codec-32-immunized
mkdir -p src/ganprint/assets/models
cp -r "$run/final" src/ganprint/assets/models/codec-32-immunized
echo "shipped $run/final as codec-32-immunized"
# Calibrate on the clean training images (per-bit bias -> calibrated threshold), as codec-32.
ganprint calibrate --model src/ganprint/assets/models/codec-32-immunized --data_dir "$work/train.zip" -q --overwrite

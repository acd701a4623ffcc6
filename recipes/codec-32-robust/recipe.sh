#!/usr/bin/env bash
# Recipe of `codec-32-robust` (src/ganprint/assets/models/codec-32-robust): the immunized codec made
# to meet every robustness target of issue 6 (bit accuracy >= 0.95 under JPEG 75, noise 0.05, blur 1,
# crop 90%, brightness +-30%, PSNR >= 32 dB) by carrying 50 bits instead of 100.
# Why fewer bits: at 100 bits in 32x32 pixels and 32 dB, JPEG 75 leaves too little of the residual
# for a blind decoder (codec-32-immunized: 0.81; docs/robustness.md). Folding writes each bit twice
# into the same networks (`ganprint codec fold`: exactly the old codec, each bit with twice the
# energy, read as the sum of two logits): JPEG 75 0.81 -> 0.88 with no training. A fine-tuning run
# from the folded codec then adapts both networks to the repetition, with JPEG drawn six times as
# often as each other perturbation (the folded codec has room to spare on the others: >= 0.98;
# JPEG drawn three times as often gained less: 0.92 against 0.93 after 2000 steps on 64 images).
# Embed with informed embedding (`codec embed --refine-steps 40`) to reach the JPEG target.
# Run from the project root in an environment where ganprint is installed with its [assets] extra
# (`pip install -e ".[assets]"`) and the Debian package dataset-fashion-mnist is present; it starts
# from the shipped codec-32-immunized (recipes/codec-32-immunized/recipe.sh).
set -euo pipefail
work=${1:-runs/codec-32-robust-recipe}
mkdir -p "$work"
if [ ! -f "$work/train.zip" ]; then
    python recipes/codec-32/make_training_set.py "$work/train.zip" --crops 16000 --fashion 4000 --seed 0
fi
ganprint codec fold codec-32-immunized --factor 2 --output "$work/folded" --overwrite
ganprint codec train --data_dir "$work/train.zip" --output_dir "$work/fine-tune" --init "$work/folded" --arch ganprint \
    --image_resolution 32 --fingerprint_length 50 --batch_size 64 --steps 3000 --lr 3e-4 \
    --residual-rms 0.0245 --start-rms 0.0245 \
    --augment jpeg=40@6,crop=0.15,noise=0.07,blur,brightness --augment-ramp 200 \
    --seed 2 --snapshot-every 500 --eval-every 100
run=$(ls -d "$work"/fine-tune/0*-codec-ganprint-32px-50b | tail -n 1)
rm -rf src/ganprint/assets/models/codec-32-robust
mkdir -p src/ganprint/assets/models
cp -r "$run/final" src/ganprint/assets/models/codec-32-robust
echo "shipped $run/final as codec-32-robust"
# Calibrate on the clean training images (per-bit bias -> calibrated threshold), as codec-32.
ganprint calibrate --model src/ganprint/assets/models/codec-32-robust --data_dir "$work/train.zip" -q --overwrite

#!/usr/bin/env bash
# Recipe of the shipped any-size codec `codec-any` (src/ganprint/assets/models/codec-any).
# Run from the project root as root (apt-get) in an environment where ganprint is installed with its
# [assets] extra (`pip install -e ".[assets]"`). Resumable: run it again after an interruption and the
# training continues from its last checkpoint (every 250 steps).
# Wall time on this project's 2-core CPU: see docs/codec-design.md ("Any size").
set -euo pipefail
work=${1:-runs/codec-any-recipe}
mkdir -p "$work"
if [ ! -d /usr/share/wallpapers ]; then
    apt-get install -y --no-install-recommends plasma-workspace-wallpapers
fi
[ -d "$work/train-photos" ] || python recipes/codec-any/make_training_set.py "$work/train-photos"
run=$(ls -d "$work"/0*-codec-anysize-128w-100b 2>/dev/null | tail -n 1 || true)
if [ -n "$run" ] && [ -f "$run/checkpoint.pt" ]; then
    ganprint codec train-anysize --resume "$run" --steps "${STEPS:-6000}"
else
    ganprint codec train-anysize --data_dir "$work/train-photos" --output_dir "$work" \
        --fingerprint-length 100 --channels 48 --residual-rms 0.0065 --batch-size 16 \
        --steps "${STEPS:-6000}" --snapshot-every 250 --seed 0
    run=$(ls -d "$work"/0*-codec-anysize-128w-100b | tail -n 1)
fi
rm -rf src/ganprint/assets/models/codec-any
cp -r "$run/final" src/ganprint/assets/models/codec-any
echo "shipped $run/final as codec-any"
# Calibrate on clean training photos (crops of many sizes): per-bit bias -> calibrated threshold.
ganprint calibrate --model src/ganprint/assets/models/codec-any --data_dir "$work/train-photos" -q --overwrite

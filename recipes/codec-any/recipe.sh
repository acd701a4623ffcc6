#!/usr/bin/env bash
# Recipe of the shipped any-size codec `codec-any` (src/ganprint/assets/models/codec-any).
# Run from the project root as root (apt-get) in an environment where ganprint is installed with its
# [assets] extra (`pip install -e ".[assets]"`). Resumable: run it again after an interruption and each
# stage continues from its last checkpoint (every 100 steps). Wall time on this project's 2-core CPU:
# stage 1 about 16 minutes, stage 2 about 14 minutes, calibration a few minutes (docs/codec-design.md).
set -euo pipefail
work=${1:-runs/codec-any-recipe}
mkdir -p "$work"
if [ ! -d /usr/share/wallpapers ]; then
    apt-get install -y --no-install-recommends plasma-workspace-wallpapers
fi
[ -d "$work/calibration" ] || python recipes/codec-any/make_training_set.py "$work/train-photos" \
    --calibration "$work/calibration"

# train_stage NAME ARGS...: start the stage, or resume it from its checkpoint
train_stage() {
    local name=$1; shift
    local run
    run=$(ls -d "$work/$name"/0*-codec-anysize-128w-100b 2>/dev/null | tail -n 1 || true)
    if [ -n "$run" ] && [ -f "$run/final/config.json" ]; then
        :  # finished
    elif [ -n "$run" ] && [ -f "$run/checkpoint.pt" ]; then
        ganprint codec train-anysize --resume "$run" -q >&2
    else
        ganprint codec train-anysize --data_dir "$work/train-photos" --output_dir "$work/$name" -q "$@" >&2
    fi
    ls -d "$work/$name"/0*-codec-anysize-128w-100b | tail -n 1
}

# Stage 1: codec-32-immunized's layers, run over 32 px tiles of a 128 px working image, trained on at
# native sizes through the attacks, with the loss that keeps wrong tile shifts unconfident (a longer run
# of this stage collapsed between steps 700 and 800: docs/codec-design.md).
stage1=$(train_stage stage1 --arch conv --init codec-32-immunized --channels 64 --message-channels 8 \
    --start-rms 0.012 --residual-rms 0.0075 --anneal-accuracy 0.92 --augment-ramp 600 --lr 5e-4 \
    --batch-size 10 --steps 700 --snapshot-every 100 --seed 0)
# Stage 2: on from stage 1 without that loss, attacks at full strength, a lower learning rate.
stage2=$(train_stage stage2 --arch conv --init "$stage1/final" --channels 64 --message-channels 8 \
    --start-rms 0.012 --residual-rms 0.0075 --anneal-accuracy 0.92 --augment-ramp 1 --lr 2e-4 \
    --sync-weight 0 --batch-size 10 --steps 600 --snapshot-every 100 --seed 0)
rm -rf src/ganprint/assets/models/codec-any
cp -r "$stage2/final" src/ganprint/assets/models/codec-any
echo "shipped $stage2/final as codec-any"
# Calibrate on 1,000 clean crops of the training photos (many sizes): per-bit bias -> calibrated threshold.
ganprint calibrate --model src/ganprint/assets/models/codec-any --data_dir "$work/calibration" -q --overwrite

#!/usr/bin/env bash
# Recipe of the shipped codec `codec-32` (src/ganprint/assets/models/codec-32).
# Run from the project root in an environment where ganprint is installed with its [assets] extra
# (`pip install -e ".[assets]"`) and the Debian package dataset-fashion-mnist is present.
# About 45 minutes on 2 CPU cores.
set -euo pipefail
work=${1:-runs/codec-32-recipe}
mkdir -p "$work"
python recipes/codec-32/make_training_set.py "$work/train.zip" --crops 16000 --fashion 4000 --seed 0
ganprint codec train --data_dir "$work/train.zip" --output_dir "$work" --arch ganprint \
    --image_resolution 32 --fingerprint_length 100 --batch_size 64 --steps 4000 --lr 1e-3 \
    --residual-rms 0.016 --start-rms 0.1 --seed 0 --snapshot-every 500 --eval-every 100
run=$(ls -d "$work"/0*-codec-ganprint-32px-100b | tail -n 1)
rm -rf src/ganprint/assets/models/codec-32
mkdir -p src/ganprint/assets/models
cp -r "$run/final" src/ganprint/assets/models/codec-32
# Ship it mean-preserving: the residual leaves each image's mean colour unchanged (a setting of the
# encoder, not a weight; the decoder reads these images as well: docs/transfer.md, "Mean-preserving").
python - <<'PY'
import json
path = "src/ganprint/assets/models/codec-32/config.json"
config = json.load(open(path))
config["mean_preserving"] = True
open(path, "w").write(json.dumps(config, indent=2, sort_keys=True) + "\n")
PY
echo "shipped $run/final as codec-32"
# Calibrate on the clean training images: per-bit bias -> calibrated threshold used by detect/attribute.
ganprint calibrate --model src/ganprint/assets/models/codec-32 --data_dir "$work/train.zip" -q --overwrite

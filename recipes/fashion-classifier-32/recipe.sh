#!/usr/bin/env bash
# Recipe of `fashion-classifier-32` (src/ganprint/assets/models/fashion-classifier-32), the measuring
# instrument of the GAN fidelity benchmark (benchmarks/bench_fidelity.py): a small CNN trained on the
# 60,000 Fashion-MNIST training images (28 -> 32 px, as the GANs' training set), tested on the 10,000
# test images. About 10 minutes on one CPU thread. Needs the Debian package dataset-fashion-mnist.
#
#   bash recipes/fashion-classifier-32/recipe.sh [WORK_DIR]
set -euo pipefail
work=${1:-runs/fashion-classifier-32-recipe}
mkdir -p "$work"
[ -f "$work/train-32.zip" ] || ganprint dataset create-fashion-mnist "$work/train-32.zip" --resolution 32 -q
[ -f "$work/test-32.zip" ] || ganprint dataset create-fashion-mnist "$work/test-32.zip" --resolution 32 --split test -q
python "$(dirname "$0")/train.py" "$work/train-32.zip" "$work/test-32.zip" "$work/model" --epochs 5 --seed 0
rm -rf src/ganprint/assets/models/fashion-classifier-32
cp -r "$work/model" src/ganprint/assets/models/fashion-classifier-32

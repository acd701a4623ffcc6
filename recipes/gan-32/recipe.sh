#!/usr/bin/env bash
# Recipe of `gan-32` (src/ganprint/assets/models/gan-32): the UNFINGERPRINTED baseline of scalable-32,
# for measuring what fingerprinting costs in sample quality (benchmarks/bench_fidelity.py,
# docs/scalable.md "Fidelity"). The same data (Fashion-MNIST, 28 -> 32 px), the same widths (the cpu32
# preset: ganprint.gan.network, derived from the scalable preset), batch 16, EMA, and the same
# training length as scalable-32 (200 kimg); z goes through the mapping network as in StyleGAN2, no
# code input, no decoder. R1 weight 0.1 (scalable-32: 1, which it needs to keep z in charge of the
# content; with 0.1 this GAN trains better, so the comparison is against the stronger baseline).
# About 45 minutes on one CPU thread; Ctrl-C leaves a checkpoint and running the recipe again
# continues exactly. SEED (environment, default 0) makes the other seeds of the benchmark.
#
#   bash recipes/gan-32/recipe.sh [WORK_DIR] [TOTAL_KIMG]
set -euo pipefail
seed=${SEED:-0}
work=${1:-runs/gan-32-recipe}
total_kimg=${2:-200}
mkdir -p "$work"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

if [ ! -f "$work/fashion-mnist-32.zip" ]; then
    ganprint dataset create-fashion-mnist "$work/fashion-mnist-32.zip" --resolution 32
fi
out="$work/seed$seed"
run=$(ls -d "$out"/0*-gan-cpu32-32px 2>/dev/null | tail -n 1 || true)
if [ -n "$run" ] && [ -f "$run/checkpoint.pt" ]; then
    ganprint gan train --resume "$run" --total-kimg "$total_kimg"
else
    ganprint gan train --data "$work/fashion-mnist-32.zip" --output-dir "$out" --preset cpu32 --gamma 0.1 \
        --total-kimg "$total_kimg" --seed "$seed" --snapshot-kimg 20
    run=$(ls -d "$out"/0*-gan-cpu32-32px | tail -n 1)
fi
snapshot=$(ls -d "$run"/network-snapshot-* | tail -n 1)
if [ "$seed" = 0 ]; then  # ship seed 0
    rm -rf src/ganprint/assets/models/gan-32
    mkdir -p src/ganprint/assets/models/gan-32
    cp "$snapshot/config.json" src/ganprint/assets/models/gan-32/
    python - "$snapshot/model.safetensors" src/ganprint/assets/models/gan-32/model.safetensors <<'PY'
import sys
from safetensors.torch import load_file, save_file
weights = load_file(sys.argv[1])
save_file({k: v.half() if v.is_floating_point() else v for k, v in weights.items()}, sys.argv[2])
PY
    echo "shipped $snapshot as gan-32"
fi

#!/usr/bin/env bash
# The GPU measurements of the extraction and SAE issues, as one run that fits a 10-minute call.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]        # default OUT_DIR: $OUT, else ./gpu-check
#
# Needs python3 with torch (CUDA), timm, pandas, pillow, tqdm and safetensors; the repository is
# used from its checkout (PYTHONPATH), nothing is installed. Writes extract.txt, sae.txt, sae.json
# and gpu.txt to OUT_DIR.
#   1. extraction, DinoBloom-B (random init) to blocks[-2], bf16 autocast where supported:
#      images/s of ours and of the naive baseline, per-stage rates (decode / device / store write)
#      and which stage bounds the run -- the target is that decoding, not the GPU, sets the pace;
#   2. the SAE step at expansion 64 (49,152 latents), fp32 and bf16 autocast, tokens/s.
# Sizes can be lowered for a dry run on a CPU: DEVICE=cpu N=16 SAE_IMAGES=2 bash benchmarks/gpu_check.sh
set -euo pipefail
out=${1:-${OUT:-gpu-check}}
device=${DEVICE:-cuda}
n=${N:-2048}
batch=${BATCH:-128}
sae_images=${SAE_IMAGES:-64}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
fi
python3 -c "import os, torch, timm; print('torch', torch.__version__, 'timm', timm.__version__, 'cpus', os.cpu_count())" \
  | tee -a "$out/gpu.txt"
timeout 330 python3 benchmarks/bench_extract.py --device "$device" --arch dinobloom-b --layer -2 \
  --n "$n" --n-small "$((n / 2))" --batch-size "$batch" --shard-size 256 --repeats 2 --stages \
  2>&1 | tee "$out/extract.txt"
timeout 200 python3 benchmarks/bench_sae.py --device "$device" --images "$sae_images" --steps 10 \
  --expansions 64 --bf16-expansion 64 --json "$out/sae.json" 2>&1 | tee "$out/sae.txt"

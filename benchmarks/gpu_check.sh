#!/usr/bin/env bash
# The GPU measurements, as ONE prepared run (expected 5-6 minutes on an H200). Each section has its
# own timeout, and the whole call a budget (BUDGET, default 470 s): a section that would not fit is
# cut to what is left or skipped, so partial results still come back. Every section writes OUT_DIR/<section>.json
# (benchmarks/gpu_check.py documents them) and its log OUT_DIR/<section>.txt:
#
#   env      GPU, driver, versions
#   matmul   (f) bf16 / tf32 / fp32 GEMM rate (8192^3 in a loop), to express the SAE step against
#   store    (a) a random-token store of MLL23's size (41,621 x 257 x 768 fp16 = 16.4 GB) written
#            directly (no backbone), and the training reader's rate on it, cold and warm
#   extract  (b) DinoBloom-B (random init) to blocks[-2], fp32 and bf16: end-to-end images/s and
#            the decode / device / write stage rates
#   sae      (c, e) the paper SAE (x64, 64 images/step) trained on the store by train_sae, fp32 and
#            bf16: tokens/s, loss difference bf16 vs fp32, fraction of the GEMM rate, peak memory
#   encode   (d, e) encode_pass of the x64 SAE on a timed subset, extrapolated to the five datasets
#   project  (g) projected wall time of the paper's full run vs the official approach
#   bench_sae  benchmarks/bench_sae.py on the GPU (ours vs the plain autograd step), if time is left
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]        # default OUT_DIR: $OUT, else ./gpu-check
#
# Needs python3 with torch (CUDA), timm, pandas, pillow, scipy, tqdm and safetensors; the
# repository is used from its checkout (PYTHONPATH), nothing is installed. The store (16.4 GB) goes
# to STORE_DIR (default /tmp) and is removed at the end unless KEEP_STORE=1 (a second call can
# then reuse it: e.g. SECTIONS="sae encode project" after a first call with "env matmul store extract").
# Dry run on a CPU (a few minutes):
#   DEVICE=cpu STORE_IMAGES=300 EXTRACT_IMAGES=16 EXTRACT_BATCH=8 EXPANSION=2 SAE_IMAGES=2 \
#     SAE_PROBE_STEPS=2 SAE_SECONDS=3 ENCODE_IMAGES=64 GEMM_N=512 READ_STEPS=4 \
#     bash benchmarks/gpu_check.sh /tmp/gpu-check-dry
set -uo pipefail
out=${1:-${OUT:-gpu-check}}
py=${PYTHON:-python3}
device=${DEVICE:-cuda}
store_dir=${STORE_DIR:-/tmp}
sections=${SECTIONS:-env matmul store extract sae encode project bench_sae}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
args=(--out "$out" --device "$device" --store-dir "$store_dir"
  --store-images "${STORE_IMAGES:-41621}" --read-steps "${READ_STEPS:-200}"
  --gemm-n "${GEMM_N:-8192}" --extract-images "${EXTRACT_IMAGES:-2048}"
  --extract-batch "${EXTRACT_BATCH:-128}" --expansion "${EXPANSION:-64}"
  --sae-seconds "${SAE_SECONDS:-25}" --sae-batch "${SAE_IMAGES:-64}"
  --sae-probe-steps "${SAE_PROBE_STEPS:-10}" --encode-images "${ENCODE_IMAGES:-4096}")
declare -A limit=([env]=60 [matmul]=40 [store]=150 [extract]=150 [sae]=130 [encode]=90 [project]=20 [bench_sae]=100)
t_start=$SECONDS
status="{"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
fi
budget=${BUDGET:-470}  # seconds for the whole call (a device call may run 8 minutes)
for s in $sections; do
  t0=$SECONDS
  left=$((budget - (SECONDS - t_start)))
  lim=${limit[$s]:-120}
  if [ "$s" != project ] && [ "$left" -lt 20 ]; then
    echo "=== $s: skipped, $left s of the ${budget} s budget left ==="
    status="$status\"$s\": {\"rc\": \"skipped\"}, "
    continue
  fi
  [ "$s" != project ] && [ "$lim" -gt "$left" ] && lim=$left
  echo "=== $s (limit $lim s, $((SECONDS - t_start)) s elapsed) ==="
  if [ "$s" = bench_sae ]; then
    timeout "$lim" "$py" benchmarks/bench_sae.py --device "$device" \
      --images "${SAE_IMAGES:-64}" --steps 5 --expansions "${EXPANSION:-64}" \
      --bf16-expansion "${EXPANSION:-64}" --json "$out/bench_sae.json" 2>&1 | tee "$out/$s.txt"
  else
    timeout "$lim" "$py" benchmarks/gpu_check.py "$s" "${args[@]}" 2>&1 | tee "$out/$s.txt"
  fi
  rc=${PIPESTATUS[0]}
  echo "=== $s: rc $rc, $((SECONDS - t0)) s ==="
  status="$status\"$s\": {\"rc\": $rc, \"seconds\": $((SECONDS - t0))}, "
done
echo "${status}\"total_seconds\": $((SECONDS - t_start))}" | tee "$out/sections.json"
if [ "${KEEP_STORE:-0}" != 1 ]; then
  rm -rf "$store_dir/store_${STORE_IMAGES:-41621}"
fi

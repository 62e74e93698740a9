#!/usr/bin/env bash
# GPU figures for benchmarks/RESULTS.md, in one run (about 6-8 minutes on an H100).
#
#   OUT=/some/dir bash benchmarks/gpu_suite.sh
#
# Needs a Python environment where `import jax` sees the GPU (jax[cuda12]) and, for the
# torch comparison, a CUDA build of torch (never in CI). Writes one JSON file per
# measurement under $OUT (default ./gpu_results) and prints a summary at the end:
#   * step time, both strategies x both matmul dtypes, and our torch reference on CUDA,
#     for smnist-ff-64 and smnist-rec-64 at batch 256, T = 784 (interleaved rounds);
#   * an S-MNIST epoch: 234 train steps of batch 256 (60,000 / 256) with the auto
#     strategy, random data of the right shape (the input pipeline is not timed);
#   * peak device memory per configuration (memory_stats()["peak_bytes_in_use"]).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-./gpu_results}"
mkdir -p "$OUT"
PY="${PYTHON:-python}"

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
"$PY" - <<'EOF' | tee "$OUT/versions.txt"
import jax
print("jax", jax.__version__, "backend", jax.default_backend(), jax.devices())
try:
    import torch
    print("torch", torch.__version__, "cuda", torch.cuda.is_available())
except ImportError:
    print("torch not installed: the torch rows will be missing")
EOF
if [ "$("$PY" -c 'import jax; print(jax.default_backend())')" != "gpu" ]; then
  echo "JAX does not see a GPU; install jax[cuda12] on this machine first." >&2
  exit 1
fi
AGAINST=none
if "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  AGAINST=torch
fi

CONFIG=benchmarks/configs/step_time.py
for preset in smnist-ff-64 smnist-rec-64; do
  echo "== step time: $preset"
  "$PY" -m benchmarks.step_time \
    --config="$CONFIG:preset=$preset,batch=256,strategy=all,matmul_dtype=all,against=$AGAINST,repeats=5,warmup=2" \
    --config.malloc_tuning=False --config.json=True \
    > "$OUT/step_time_${preset}.json"
  echo "== epoch (234 steps, auto strategy): $preset"
  "$PY" -m benchmarks.step_time \
    --config="$CONFIG:preset=$preset,batch=256,strategy=auto,matmul_dtype=float32,repeats=234,warmup=2,settle=0" \
    --config.memory=False --config.peak=False --config.malloc_tuning=False --config.json=True \
    > "$OUT/epoch_${preset}.json"
done

"$PY" - "$OUT" <<'EOF'
import json, sys, glob, os
out = sys.argv[1]
for f in sorted(glob.glob(os.path.join(out, "step_time_*.json"))):
    d = json.load(open(f))
    print(f"\n{d['preset']} (batch {d['batch']}, T {d['steps']}) on {d['machine']['device']}")
    for r in d["results"]:
        mem = r.get("device_peak_bytes")
        print(f"  {r['name']:34s} median {r['median_s']:.4f} s  x torch {r.get('ratio_vs_torch', float('nan')):.3f}"
              f"  {r['gflops']:.0f} GFLOP/s  device peak {mem / 2**30 if mem else float('nan'):.2f} GB")
for f in sorted(glob.glob(os.path.join(out, "epoch_*.json"))):
    d = json.load(open(f))
    r = d["results"][0]
    print(f"epoch {d['preset']}: {r['total_s']:.1f} s for {r['n']} steps ({r['name']})")
EOF

#!/usr/bin/env bash
# GPU figures for benchmarks/RESULTS.md. Two parts, each sized for one call of at most
# 8 minutes on an H100/H200:
#
#   OUT=/some/dir bash benchmarks/gpu_suite.sh peers       # spyx, snnTorch, norse and ours
#   OUT=/some/dir bash benchmarks/gpu_suite.sh step_time   # our step against our torch reference
#   OUT=/some/dir bash benchmarks/gpu_suite.sh             # both, one after the other (~15 min)
#
# Needs a Python environment where `import jax` sees the GPU (jax[cuda12] or [cuda13]) and,
# for the torch rows, a CUDA build of torch (never in CI). Writes one JSON file per
# measurement under $OUT (default ./gpu_results) and prints a summary at the end.
#
# step_time part:
#   * step time, both strategies x both matmul dtypes, and our torch reference on CUDA,
#     for smnist-ff-64 and smnist-rec-64 at batch 256, T = 784 (interleaved rounds);
#   * an S-MNIST epoch: 234 train steps of batch 256 (60,000 / 256) with the auto
#     strategy, random data of the right shape (the input pipeline is not timed);
#   * peak device memory per configuration (memory_stats()["peak_bytes_in_use"]).
# peers part (benchmarks/peers.py; every library in one run per setting, interleaved):
#   * setting b, the Open Neuromorphic benchmark (Linear(n, n) + LIF, T = 500, batch 16,
#     forward + backward) at n = 4,096 and 16,384;
#   * setting a, the SHD-shaped train step (700-128-128-20, T = 250) at batch 256 and 64;
#   * every peer (spyx in-process, snnTorch and norse on CUDA in a worker each) and ours
#     with LIF and TC-LIF under both strategies (layerwise and fused).
#   Each run has a time limit (PEERS_LIMIT_S, seconds, default 110) so that one slow run
#   cannot take the others with it; a run that hits it leaves a .err file instead.
#
# The peers and ml_collections are not in the device image: carry them as wheels (6 MB),
# made here in the repository root (`.whl/` must be ignored: add it to .git/info/exclude):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux2014_x86_64 -d .whl spyx==1.0.0 snntorch==1.0.0 nir==1.0.8 \
#     nirtorch==2.6 grain==0.2.18 array-record==0.8.6 portpicker==1.6.0 ml-collections==1.1.0
#   python3 -m pip wheel --no-deps -w .whl norse==1.1.0     # an sdist: pure Python
# This script installs whatever is in .whl (without dependencies, so the image's torch and
# jax stay) into /tmp/site before it runs.
set -euo pipefail
cd "$(dirname "$0")/.."
PART="${1:-all}"
case "$PART" in all | peers | step_time) ;; *)
  echo "usage: bash benchmarks/gpu_suite.sh [peers|step_time|all]" >&2
  exit 2
  ;;
esac
OUT="${OUT:-./gpu_results}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"  # the device image's python3 holds torch and jax
export PYTHONUNBUFFERED=1
# The torch workers share the GPU with JAX: no up-front grab of 75% of its memory.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
"$PY" - <<'EOF' | tee "$OUT/versions.txt"
import importlib.metadata as md
import jax
print("jax", jax.__version__, "backend", jax.default_backend(), jax.devices())
try:
    import torch
    print("torch", torch.__version__, "cuda", torch.cuda.is_available())
except ImportError:
    print("torch not installed: the torch rows will be missing")
for dist in ("flax", "optax", "spyx", "snntorch", "norse", "ml_collections"):
    try:
        print(dist, md.version(dist))
    except md.PackageNotFoundError:
        print(dist, "not installed")
EOF
if [ "$("$PY" -c 'import jax; print(jax.default_backend())')" != "gpu" ]; then
  echo "JAX does not see a GPU; install jax[cuda12] on this machine first." >&2
  exit 1
fi

if [ "$PART" != peers ]; then
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
      >"$OUT/step_time_${preset}.json"
    echo "== epoch (234 steps, auto strategy): $preset"
    "$PY" -m benchmarks.step_time \
      --config="$CONFIG:preset=$preset,batch=256,strategy=auto,matmul_dtype=float32,repeats=234,warmup=2,settle=0" \
      --config.memory=False --config.peak=False --config.malloc_tuning=False --config.json=True \
      >"$OUT/epoch_${preset}.json"
  done
fi

if [ "$PART" != step_time ]; then
  LIMIT="${PEERS_LIMIT_S:-110}"
  PEERS=benchmarks/configs/peers.py
  for run in b:n=4096 b:n=16384 a:batch=256 a:batch=64; do
    setting="${run%%:*}"
    arg="${run#*:}"
    name="peers_${setting}_${arg//=/}"
    echo "== peers: setting $setting, $arg (limit $LIMIT s)"
    start=$SECONDS
    if timeout "$LIMIT" "$PY" -m benchmarks.peers \
      --config="$PEERS:setting=$setting,$arg,repeats=5,json=True" \
      --config.strategy="layerwise,fused" --config.missing=skip --config.malloc_tuning=False \
      >"$OUT/$name.json" 2>"$OUT/$name.log"; then
      echo "   done in $((SECONDS - start)) s"
    else
      echo "   FAILED or over the limit after $((SECONDS - start)) s; see $OUT/$name.err" >&2
      mv "$OUT/$name.log" "$OUT/$name.err"
      rm -f "$OUT/$name.json"
    fi
  done
fi

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
for f in sorted(glob.glob(os.path.join(out, "peers_*.json"))):
    d = json.load(open(f))
    what = f"batch {d['batch']}" if d["setting"] == "a" else f"n {d['widths'][0]}"
    print(f"\npeers, setting {d['setting']}, {what}, T {d['steps']} on {d['machine']['device']}")
    for r in d["results"]:
        print(f"  {r['name']:28s} {r['version'] or '':8s} median {r['median_s']:.4f} s "
              f"(min {r['min_s']:.4f}, max {r['max_s']:.4f})  x best peer "
              f"{r['ratio_vs_fastest_peer'] or float('nan'):.3f}  first loss {r['first_loss']:.4g}")
    for s in d["skipped"]:
        print(f"  skipped {s['library']}: {s['reason']}")
EOF

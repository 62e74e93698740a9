"""Before/after train-step time: two versions of the package in one process, interleaved.

"before" is an older commit's package copied under another name; "after" is the working
tree's ``tclif_jax``. Prepare the copy once (REV: the commit to compare with)::

    mkdir -p /tmp/ab && git archive REV tclif_jax | tar -x -C /tmp/ab
    mv /tmp/ab/tclif_jax /tmp/ab/tclif_before
    grep -rl tclif_jax /tmp/ab/tclif_before | xargs sed -i 's/tclif_jax/tclif_before/g'
    REPS=8 python -m benchmarks.before_after

Times one Adam train step (``make_train_step`` of each version, compiled once) on
smnist-ff-64 (batch 256, T 784, uniform pixels) and shd-rec (batch 256, T 250, 5% input
spikes), the default execution (auto: fused on CPU), f32; the two versions alternate step
by step, in an order that flips every repetition. Prints the median seconds and the ratio.
Both versions' step signature ``step(params, opt_state, x, y, key)`` must match.
"""

import json
import os
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.environ.get("BEFORE_DIR", "/tmp/ab"))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

CASES = (("smnist-ff-64", 784, 1), ("shd-rec", 250, 700))


def _versions():
    from tclif_before.models import from_preset as old_preset
    from tclif_before.models import parameters as old_params
    from tclif_before.train import make_train_step as old_step

    from tclif_jax.models import from_preset, parameters
    from tclif_jax.train import make_train_step

    return {
        "before": (old_preset, old_params, old_step),
        "after": (from_preset, parameters, make_train_step),
    }


def _runner(version, preset, x, y, key):
    """A function that runs one compiled train step of ``version`` and waits for it."""
    build, params_of, make_step = version
    model = build(preset, seed=0)
    tx = optax.adam(5e-4)
    state = [jax.tree.map(jnp.array, params_of(model))]
    state.append(tx.init(state[0]))
    compiled = make_step(model, tx).lower(state[0], state[1], x, y, key).compile()

    def run():
        state[0], state[1], metrics = compiled(state[0], state[1], x, y, key)
        jax.block_until_ready(state[0])
        return float(metrics["loss"])

    run(), run()  # warm
    return run


def main(reps: int) -> dict:
    out = {}
    for preset, steps, features in CASES:
        rng = np.random.default_rng(0)
        x = rng.random((256, steps, features), dtype=np.float32)
        if features > 1:
            x = (x < 0.05).astype(np.float32)
        y = rng.integers(0, 10, 256).astype(np.int32)
        x, y, key = jax.device_put(x), jax.device_put(y), jax.random.key(0)
        runners = {n: _runner(v, preset, x, y, key) for n, v in _versions().items()}
        times = {n: [] for n in runners}
        for r in range(reps):
            for name in list(runners)[:: 1 if r % 2 == 0 else -1]:
                t0 = time.perf_counter()
                runners[name]()
                times[name].append(time.perf_counter() - t0)
        med = {n: float(np.median(t)) for n, t in times.items()}
        out[preset] = {"median_s": med, "after_over_before": med["after"] / med["before"]}
        out[preset]["times"] = times
        print(
            preset, {n: round(v, 3) for n, v in med.items()}, round(med["after"] / med["before"], 3)
        )
    return out


if __name__ == "__main__":
    print(json.dumps(main(int(os.environ.get("REPS", 8)))))

"""Run the README's quickstart (TC-LIF and LIF) and record its figures in one JSON file.

  python docs/scripts/quickstart_figures.py            # writes docs/results/quickstart/

The README and the site quote the accuracies and wall times of ``quickstart.json`` and
name its machine and date; ``tests/test_docs.py`` checks that they agree with it. Each
run is the README's command verbatim, in a fresh temporary work directory, one after the
other. XLA:CPU compiles for the processor it finds, so results differ between processor
models; rerunning on one machine reproduces them bit for bit (accuracies, not times).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "docs", "results", "quickstart")
CONFIG = "--config=experiments/configs/delayed_cue.py"
# name -> (the README's command, its work directory); the commands are quoted as written.
RUNS = {
    "tclif": f"python -m experiments.delayed_cue {CONFIG} --workdir=runs/quickstart",
    "lif": f"python -m experiments.delayed_cue {CONFIG} --workdir=runs/quickstart-lif "
    "--config.model.neuron=lif",
}


def run_one(command: str, workdir: str) -> dict:
    """Run ``command`` with its ``--workdir`` redirected to ``workdir``; return its figures."""
    args = [a for a in shlex.split(command) if not a.startswith("--workdir=")]
    args = [sys.executable, *args[1:], f"--workdir={workdir}"]
    start = time.perf_counter()
    subprocess.run(args, cwd=ROOT, check=True, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    wall = time.perf_counter() - start
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f if line.strip()]
    last = records[-1]
    return {
        "command": command,
        "epochs": last["epoch"],
        "steps": last["step"],
        "best_test_acc": max(r["test_acc"] for r in records),
        "final_test_acc": last["test_acc"],
        "wall_time_s": round(wall, 1),
    }


def main() -> None:
    import jax

    sys.path.insert(0, ROOT)  # this checkout's version, which the runs above used
    import tclif_jax
    from benchmarks.common import cpu_model

    load = os.getloadavg()[0]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, command in RUNS.items():
            workdir = os.path.join(tmp, name)
            results[name] = run_one(command, workdir)
            if name == "tclif":
                os.makedirs(OUT, exist_ok=True)
                shutil.copy(os.path.join(workdir, "learning_curve.png"), OUT)
    record = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
        "machine": {
            "cpu": cpu_model(),  # the benchmarks' own record of the machine
            "cores": len(os.sched_getaffinity(0)),
            "system": f"{platform.system()} {platform.machine()}",
            # Wall times depend on what else ran; the accuracies do not.
            "load_average_1min_at_start": round(load, 2),
        },
        "versions": {
            "python": platform.python_version(),
            "jax": jax.__version__,
            "tclif_jax": tclif_jax.__version__,
        },
        "regenerate": "python docs/scripts/quickstart_figures.py",
        "runs": results,
    }
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "quickstart.json"), "w") as f:
        json.dump(record, f, indent=1)
        f.write("\n")
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()

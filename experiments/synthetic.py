"""Train on synthetic: `python -m experiments.synthetic --config=experiments/configs/synthetic.py[:variant]`."""

from experiments.main import run

if __name__ == "__main__":
    run("delayed_cue")

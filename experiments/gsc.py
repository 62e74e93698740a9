"""Train on gsc: `python -m experiments.gsc --config=experiments/configs/gsc.py[:variant]`."""

from experiments.main import run

if __name__ == "__main__":
    run("gsc")

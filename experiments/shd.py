"""Train on shd: `python -m experiments.shd --config=experiments/configs/shd.py[:variant]`."""

from experiments.main import run

if __name__ == "__main__":
    run("shd")

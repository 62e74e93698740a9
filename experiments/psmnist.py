"""Train on psmnist: `python -m experiments.psmnist --config=experiments/configs/psmnist.py[:variant]`."""

from experiments.main import run

if __name__ == "__main__":
    run("psmnist")

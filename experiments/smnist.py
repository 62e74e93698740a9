"""Train on smnist: `python -m experiments.smnist --config=experiments/configs/smnist.py[:variant]`."""

from experiments.main import run

if __name__ == "__main__":
    run("smnist")

"""Train on digits: `python -m experiments.digits --config=experiments/configs/digits.py[:variant]`."""

from experiments.main import run

if __name__ == "__main__":
    run("digits")

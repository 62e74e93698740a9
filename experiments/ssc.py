"""Train on ssc: `python -m experiments.ssc --config=experiments/configs/ssc.py[:variant]`."""

from experiments.main import run

if __name__ == "__main__":
    run("ssc")

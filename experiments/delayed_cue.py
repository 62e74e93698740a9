"""Train on delayed_cue: `python -m experiments.delayed_cue --config=experiments/configs/delayed_cue.py[:variant]`."""

from experiments.main import run

if __name__ == "__main__":
    run("delayed_cue")

"""Entry points: ``python -m experiments.<task> --config=experiments/configs/<task>.py:<variant>``."""

"""Configs of the analysis entry points (``experiments/analyses``), one file per analysis.

  python -m experiments.analyses.<name> --config=experiments/configs/analyses/<name>.py:size=cpu

``base.py`` describes the fields they share.
"""

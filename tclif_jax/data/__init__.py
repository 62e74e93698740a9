"""Datasets as whole in-memory arrays (batch-major), loaded once and batched on device.

Interface (used by ``tclif_jax.train``):

* ``default_config(name) -> ml_collections.ConfigDict``: every field a dataset
  understands, with defaults (always ``dir``, ``train_limit``, ``test_limit``).
* ``load_dataset(name, config, workdir=None) -> SequenceDataset``.
* ``DataNotFoundError``: raised with the dataset name, the folder searched and
  how to provide the files.
"""

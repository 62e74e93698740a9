"""One config file per benchmark: ``benchmarks/configs/<name>.py`` for ``benchmarks.<name>``."""

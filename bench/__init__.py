"""carehub benchmarks: ``make bench`` (``python -m bench``) prints figures, asserts nothing."""

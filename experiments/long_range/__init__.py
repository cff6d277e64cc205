"""Long-range dependencies: the adding and copy problems over T (experiments/long_range/README.md)."""

from experiments.long_range.adding_copy import synthetic_train_step

__all__ = ["synthetic_train_step"]

"""The shapes experiment; `synthetic_train_step` gives the benchmark its train step."""

from experiments.shapes.examples import synthetic_train_step

__all__ = ["synthetic_train_step"]

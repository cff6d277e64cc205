"""Attention sequence-to-sequence translation; `synthetic_train_step` is its train step for the benchmark."""

from experiments.translation.experiment import synthetic_train_step

__all__ = ["synthetic_train_step"]

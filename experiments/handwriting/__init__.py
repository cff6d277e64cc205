"""Online handwriting recognition and generation; `synthetic_train_step` is its train step for the benchmark."""

from experiments.handwriting.handwriting import synthetic_train_step

__all__ = ["synthetic_train_step"]

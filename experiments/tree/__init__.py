"""Recursive networks vs a sequential LSTM on arithmetic expressions (experiments/tree/README.md)."""

from experiments.tree.arithmetic import synthetic_train_step

__all__ = ["synthetic_train_step"]

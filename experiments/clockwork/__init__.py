"""The clockwork experiment; `synthetic_train_step` gives the benchmark its train step."""

from experiments.clockwork.waveform import synthetic_train_step

__all__ = ["synthetic_train_step"]

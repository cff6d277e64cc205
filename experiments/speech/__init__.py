"""Connected-digit speech recognition (BLSTM-CTC); `synthetic_train_step` is its train step for the benchmark."""

from experiments.speech.speech import synthetic_train_step

__all__ = ["synthetic_train_step"]

"""Word- and character-level language modeling; `synthetic_train_step` is its train step for the benchmark."""

from experiments.language_modeling.lm import synthetic_train_step

__all__ = ["synthetic_train_step"]

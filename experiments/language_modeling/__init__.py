"""Word- and character-level language modeling; `synthetic_train_step` is its train step for the benchmark, and
`torch_train_step` the same step in the PyTorch reference (needs torch)."""

from experiments.language_modeling.lm import synthetic_train_step
from experiments.language_modeling.torch_reference import synthetic_train_step as torch_train_step

__all__ = ["synthetic_train_step", "torch_train_step"]

"""Word- and character-level language modeling; `synthetic_train_step` is its train step for the benchmark, and
`torch_train_step` the same step in the PyTorch reference (needs torch)."""

from experiments.language_modeling.lm import synthetic_train_step


def torch_train_step(*args, **kwargs):
  """`torch_reference.synthetic_train_step`, imported when called (so `python -m ...torch_reference` runs the
  module once)."""
  from experiments.language_modeling import torch_reference  # pylint: disable=import-outside-toplevel
  return torch_reference.synthetic_train_step(*args, **kwargs)


__all__ = ["synthetic_train_step", "torch_train_step"]

"""Attention sequence-to-sequence translation; `synthetic_train_step` is its train step for the benchmark."""

from rnn_jax import train


def synthetic_train_step(batch: int, length: int, variant: str = "tatoeba", **overrides) -> train.SyntheticStep:
  """`experiment.synthetic_train_step` (see there), imported when called: importing this package needs no
  experiments extra, so that `main` can name a missing one in one line."""
  from experiments.translation import experiment  # pylint: disable=g-import-not-at-top
  return experiment.synthetic_train_step(batch, length, variant, **overrides)

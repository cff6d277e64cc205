"""Online handwriting recognition and generation; `synthetic_train_step` is its train step for the benchmark."""

from rnn_jax import train


def synthetic_train_step(batch: int, length: int, variant: str = "recognition", **overrides) -> train.SyntheticStep:
  """`handwriting.synthetic_train_step` (see there), imported when called: importing this package (as the
  speech experiment does for its model) needs no experiments extra, so that `main` can name a missing one."""
  from experiments.handwriting import handwriting  # pylint: disable=g-import-not-at-top
  return handwriting.synthetic_train_step(batch, length, variant, **overrides)

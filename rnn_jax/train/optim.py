"""Optimizers and learning-rate schedules from a config, all through optax.

Config fields (`ml_collections.ConfigDict`, see `default_config`):
  name: sgd | momentum | adam | adamw
  learning_rate: peak/initial rate
  schedule: constant | step | cosine | warmup_cosine
  decay_after_epochs, decay_factor: "step" schedule (Zaremba et al. 2014: constant for
    `decay_after_epochs` epochs, then multiplied by `decay_factor` every epoch)
  warmup_steps: linear warm-up for warmup_cosine
  momentum, b1, b2, weight_decay: optimizer hyper-parameters
  clip_norm: clip gradients by global norm (0 disables)
"""

from __future__ import annotations

import math

import ml_collections
import optax

from rnn_jax.train.errors import ConfigError

OPTIMIZERS = ("sgd", "momentum", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine", "warmup_cosine")


def default_config(**overrides) -> ml_collections.ConfigDict:
  """The defaults, with `overrides` (config fields) applied."""
  cfg = ml_collections.ConfigDict(dict(
      name="adam", learning_rate=1e-3, schedule="constant", decay_after_epochs=4, decay_factor=0.5,
      warmup_steps=0, momentum=0.9, b1=0.9, b2=0.999, weight_decay=0.0, clip_norm=0.0))
  cfg.update(overrides)
  return cfg


NUMBERS = ("learning_rate", "decay_factor", "momentum", "b1", "b2", "weight_decay", "clip_norm")


def validate(cfg) -> None:
  """Raises ConfigError naming the field for values the optimizer cannot use."""
  for field in NUMBERS:
    if not math.isfinite(cfg[field]):
      raise ConfigError(f"config.optimizer.{field} must be a finite number, got {cfg[field]}")
  if cfg.name not in OPTIMIZERS:
    raise ConfigError(f"config.optimizer.name must be one of {OPTIMIZERS}, got {cfg.name!r}")
  if cfg.schedule not in SCHEDULES:
    raise ConfigError(f"config.optimizer.schedule must be one of {SCHEDULES}, got {cfg.schedule!r}")
  if not cfg.learning_rate > 0:
    raise ConfigError(f"config.optimizer.learning_rate must be > 0, got {cfg.learning_rate}")
  if cfg.clip_norm < 0:
    raise ConfigError(f"config.optimizer.clip_norm must be >= 0, got {cfg.clip_norm}")


def make_schedule(cfg, steps_per_epoch: int, total_steps: int) -> optax.Schedule:
  lr = cfg.learning_rate
  if cfg.schedule == "constant":
    return optax.constant_schedule(lr)
  if cfg.schedule == "step":
    # The first decay lands on the first step of epoch `decay_after_epochs` (0-based).
    begin = max(cfg.decay_after_epochs - 1, 0) * steps_per_epoch
    return optax.exponential_decay(lr, transition_steps=steps_per_epoch, decay_rate=cfg.decay_factor,
                                   transition_begin=begin, staircase=True)
  if cfg.schedule == "cosine":
    return optax.cosine_decay_schedule(lr, decay_steps=max(total_steps, 1))
  return optax.warmup_cosine_decay_schedule(0.0, lr, warmup_steps=cfg.warmup_steps,
                                            decay_steps=max(total_steps, cfg.warmup_steps + 1))


def make_optimizer(cfg, steps_per_epoch: int = 1, total_steps: int = 1) -> optax.GradientTransformation:
  """The optax optimizer a config describes (clipping first, then the update rule)."""
  validate(cfg)
  schedule = make_schedule(cfg, steps_per_epoch, total_steps)
  if cfg.name == "sgd":
    rule = optax.sgd(schedule)
  elif cfg.name == "momentum":
    rule = optax.sgd(schedule, momentum=cfg.momentum)
  elif cfg.name == "adam":
    rule = optax.adam(schedule, b1=cfg.b1, b2=cfg.b2)
  else:
    rule = optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, weight_decay=cfg.weight_decay)
  if cfg.clip_norm > 0:
    return optax.chain(optax.clip_by_global_norm(cfg.clip_norm), rule)
  return rule

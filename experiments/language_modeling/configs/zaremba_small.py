"""Zaremba et al. (2014) "small": 2x200 LSTM, no dropout, SGD lr 1 halved each epoch after the 4th, 13 epochs.

  python -m rnn_jax.data.fetch tiny_shakespeare        # once
  python -m experiments.language_modeling.main --config=experiments/language_modeling/configs/zaremba_small.py \
    --config.data.path=fetched:tiny_shakespeare --workdir=runs/zaremba_small
"""

from experiments.language_modeling.configs.base import base_config


def get_config():
  c = base_config()
  c.data.level = "word"
  c.data.max_vocab = 10000
  c.data.batch_size = 20
  c.data.eval_batch_size = 20
  c.data.bptt = 20
  c.model.hidden_size = 200
  c.model.embed_size = 200
  c.model.init_scale = 0.1
  c.num_epochs = 13
  c.checkpoint_every = 500
  c.log_every = 100
  c.eval_every = 0                 # evaluate at the end of every epoch
  c.eval_splits = ("valid", "test")
  c.optimizer.name = "sgd"
  c.optimizer.learning_rate = 1.0
  c.optimizer.schedule = "step"
  c.optimizer.decay_after_epochs = 4
  c.optimizer.decay_factor = 0.5
  c.optimizer.clip_norm = 5.0
  c.sample.prime = "the"
  c.sample.length = 50
  c.sample.temperature = 1.0
  return c

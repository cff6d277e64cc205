"""Tiny Shakespeare, character level, 2x512 LSTM (the README's 60-minute CPU figure).

  python -m experiments.language_modeling.main \
    --config=experiments/language_modeling/configs/shakespeare_char.py \
    --config.data.path=../shared/data/tinyshakespeare/input.txt --workdir=runs/shakespeare_char
"""

from experiments.language_modeling.configs.base import base_config


def get_config():
  c = base_config()
  c.data.path = "../shared/data/tinyshakespeare/input.txt"
  c.data.batch_size = 64
  c.data.bptt = 100
  c.model.hidden_size = 512
  c.model.embed_size = 128
  c.model.dropout = 0.25
  c.num_epochs = 6
  c.eval_every = 100
  c.checkpoint_every = 100
  c.log_every = 20
  c.eval_splits = ("valid", "test")
  c.optimizer.learning_rate = 2e-3
  c.optimizer.schedule = "cosine"
  c.sample.prime = "ROMEO:\n"
  return c

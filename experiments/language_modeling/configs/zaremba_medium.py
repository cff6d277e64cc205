"""Zaremba et al. (2014) "medium": 2x650 LSTM, dropout 0.5, init U(-0.05, 0.05), 39 epochs,
SGD lr 1 decayed by 1/1.2 each epoch after the 6th, clip 5, bptt 35.

  python -m experiments.language_modeling.main --config=experiments/language_modeling/configs/zaremba_medium.py \
    --config.data.path=PATH_TO_CORPUS --workdir=runs/zaremba_medium
"""

from experiments.language_modeling.configs import zaremba_small


def get_config():
  c = zaremba_small.get_config()
  c.data.bptt = 35
  c.model.hidden_size = 650
  c.model.embed_size = 650
  c.model.dropout = 0.5
  c.model.init_scale = 0.05
  c.num_epochs = 39
  c.optimizer.decay_after_epochs = 6
  c.optimizer.decay_factor = 1 / 1.2
  return c

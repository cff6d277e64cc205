"""The configuration both sides of the PyTorch comparison train: 2x512 LSTM, embeddings 512, dropout 0.2, Adam
2e-3, gradient norm clipped to 5, 64 streams x 100 steps, validation every 100 steps on 64 streams.

  python -m experiments.language_modeling.side_by_side --minutes=30 --out=runs/side_by_side
"""

from experiments.language_modeling.configs.base import base_config


def get_config():
  c = base_config()
  c.data.path = "fetched:tiny_shakespeare"
  c.data.batch_size = 64
  c.data.bptt = 100
  c.data.eval_batch_size = 64
  c.model.hidden_size = 512
  c.model.embed_size = 512
  c.model.dropout = 0.2
  c.num_epochs = 50               # the wall budget (--minutes) stops both programs first
  c.eval_every = 100
  c.checkpoint_every = 1000
  c.optimizer.learning_rate = 2e-3
  c.optimizer.clip_norm = 5.0
  return c

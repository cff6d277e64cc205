"""Tiny Shakespeare, character level, 2x512 LSTM (the README's 60-minute CPU figure).

Small batches (32 streams x 64 steps) give many updates per pass over this 1 MB corpus, which is what
speeds up learning in wall-clock time on a CPU (a 64 x 100 batch reached only 1.71 nats/char in 6 epochs).

  python -m rnn_jax.data.fetch tiny_shakespeare        # once (offline: --from=PATH to a downloaded input.txt)
  python -m experiments.language_modeling.main \
    --config=experiments/language_modeling/configs/shakespeare_char.py --workdir=runs/shakespeare_char
"""

from experiments.language_modeling.configs.base import base_config


def get_config():
  c = base_config()
  c.data.path = "fetched:tiny_shakespeare"
  c.data.batch_size = 32
  c.data.bptt = 64
  c.data.reset_probability = 0.02  # train from zero carries too, as evaluation starts every stream
  c.model.hidden_size = 512
  c.model.embed_size = 64
  c.model.dropout = 0.1
  c.num_epochs = 8
  c.eval_every = 200
  c.checkpoint_every = 200
  c.log_every = 50
  c.eval_splits = ("valid", "test")
  c.optimizer.learning_rate = 2e-3
  c.sample.prime = "ROMEO:\n"
  return c

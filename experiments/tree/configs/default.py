r"""Recursive networks vs a sequential LSTM on arithmetic expressions mod 10: the README's accuracy-by-depth figure.

  python -m experiments.tree.main --workdir=runs/tree

Trains each model of `models` (one sub-workdir each) and writes `accuracy_vs_depth.png`, `results.json` and
`results.md` into the workdir (experiments/tree/README.md). A quick look (a few minutes on a CPU):
`--config.num_steps=300 --config.data.train_examples=5000 --config.data.test_examples=2000`.
"""

import ml_collections

from rnn_jax.train import optim


def get_config():
  c = ml_collections.ConfigDict()
  c.seed = 0                      # seeds the expressions, the batches and the initialisation
  c.models = ("rvnn", "rvnn_mlp", "tree_lstm", "lstm")  # the sweep, one sub-workdir each (model.MODELS)
  c.supervise = "all"             # "all": every subexpression's value is a target; "root": the whole expression's
  c.num_steps = 6000              # optimizer steps per model
  c.steps_per_epoch = 0           # derived at start: train_examples // batch_size
  c.log_every = 500               # steps between log lines / metric writes
  c.eval_every = 2000             # steps between validation accuracies (also at the end)
  c.checkpoint_every = 2000       # steps between checkpoints (also at the end)
  c.keep_checkpoints = 1          # how many recent checkpoints to keep per model
  c.divergence_factor = 10.0      # stop when the loss exceeds this x |its initial value| (0: never)

  c.data = ml_collections.ConfigDict()
  c.data.train_examples = 50_000  # training expressions (batches sample them with replacement)
  c.data.train_leaves = (2, 12)   # min and max digits of a training expression
  c.data.valid_examples = 1000    # held-out expressions like the training ones, for the validation accuracy
  c.data.test_examples = 10_000   # fresh test expressions, scored at the end by depth
  c.data.test_max_leaves = 24     # max digits of a test expression (longer and deeper than in training)
  c.data.batch_size = 64          # expressions per step

  c.model = ml_collections.ConfigDict()
  c.model.tree_hidden = 64        # hidden units of the tree models
  c.model.lstm_hidden = 128       # hidden units of the sequential LSTM

  c.optimizer = optim.default_config()
  c.optimizer.learning_rate = 2e-3
  c.optimizer.clip_norm = 1.0
  return c

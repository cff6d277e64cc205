r"""Long-range dependencies: adding and copy problems over a sweep of T, the README's error-vs-T figure.

  python -m experiments.long_range.main --workdir=runs/long_range

Trains every variant on every task and T (one sub-workdir each) and writes `error_vs_T.png`, `results.json` and
`results.md` into the workdir (experiments/long_range/README.md). A quick look (minutes on a CPU):
`--config.lengths=10,20 --config.variants="('tanh_normal_clip','gru_clip')" --config.num_steps=300`.
"""

import ml_collections

from rnn_jax.train import optim


def get_config():
  c = ml_collections.ConfigDict()
  c.seed = 0                      # seeds the initialisation and the data stream
  c.tasks = ("adding", "copy")    # the sweep's tasks (model.TASKS)
  c.lengths = (50, 100, 200, 400)  # the sweep's values of T
  c.variants = ("tanh_normal", "tanh_normal_clip", "tanh_orthogonal_clip", "irnn_clip", "lstm", "lstm_clip",
                "gru_clip")       # the sweep's cells with their init and clip (model.VARIANTS)
  c.num_steps = 3000              # optimizer steps per point (a fresh batch each step)
  c.steps_per_epoch = 1           # the data is an endless stream: no epochs (unused by the constant schedule)
  c.log_every = 500               # steps between log lines / metric writes
  c.eval_every = 1000             # steps between held-out errors (also at the end)
  c.checkpoint_every = 1000       # steps between checkpoints (also at the end)
  c.keep_checkpoints = 1          # how many recent checkpoints to keep per point
  c.divergence_factor = 0.0       # 0: a run that blows up is stopped by its first NaN only (recorded as diverged)

  c.data = ml_collections.ConfigDict()
  c.data.batch_size = 32          # sequences per step
  c.data.eval_size = 1000         # fresh held-out sequences for the error

  c.model = ml_collections.ConfigDict()
  c.model.hidden_size = 64        # hidden units (all cells)

  c.optimizer = optim.default_config()
  c.optimizer.learning_rate = 1e-2  # Adam; optimizer.clip_norm is each variant's (model.VARIANTS)
  return c

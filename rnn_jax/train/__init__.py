"""Training core: pure train/eval steps, optimizers, checkpoints, the workdir, the generic loop."""

from rnn_jax.train.checkpoint import CheckpointError, Checkpointer
from rnn_jax.train.errors import (ConfigError, DivergedError, Interrupted, MeshError, NonFiniteLossError,
                                  NotTrainedError, PeerLostError, RunError, RunFinished, WorkdirLockedError,
                                  one_line_errors)
from rnn_jax.train.mesh import Layout, data_parallel
from rnn_jax.train.loop import Task, restore_params, train_loop, trained_params
from rnn_jax.train.optim import make_optimizer
from rnn_jax.train.step import (SyntheticDecode, SyntheticStep, TrainState, create_train_state, eval_step,
                                make_eval_step, make_train_step, supervised_step, train_step)
from rnn_jax.train.workdir import load_config, read_metrics, write_results

__all__ = ["CheckpointError", "Checkpointer", "ConfigError", "DivergedError", "Interrupted", "Layout", "MeshError",
           "NonFiniteLossError", "NotTrainedError", "PeerLostError", "RunError", "RunFinished", "SyntheticDecode",
           "SyntheticStep", "Task", "TrainState", "WorkdirLockedError", "create_train_state", "data_parallel",
           "eval_step", "load_config", "make_eval_step", "make_optimizer", "make_train_step", "one_line_errors",
           "read_metrics", "restore_params", "supervised_step", "train_loop", "train_step", "trained_params",
           "write_results"]

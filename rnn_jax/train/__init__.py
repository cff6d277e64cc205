"""Training core: pure train/eval steps, optimizers, checkpoints, the generic loop."""

from rnn_jax.train.checkpoint import CheckpointError, Checkpointer
from rnn_jax.train.loop import (NonFiniteLossError, Task, data_parallel, load_config, read_metrics, restore_params,
                                save_config, train_loop)
from rnn_jax.train.optim import make_optimizer
from rnn_jax.train.step import (TrainState, create_train_state, eval_step, make_eval_step, make_train_step,
                                train_step)

__all__ = ["CheckpointError", "Checkpointer", "NonFiniteLossError", "Task", "TrainState", "create_train_state",
           "data_parallel", "eval_step", "load_config", "make_eval_step", "make_optimizer", "make_train_step",
           "read_metrics", "restore_params", "save_config", "train_loop", "train_step"]

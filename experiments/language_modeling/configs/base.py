"""Defaults shared by the language-modeling configs; each named config overrides a few fields."""

import ml_collections

from rnn_jax.train import distributed, mesh, optim


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0                      # seeds init, dropout (per step via fold_in) -- a run is reproducible from it
  c.num_steps = 0                 # optimizer steps; 0: num_epochs * steps_per_epoch (filled in at start)
  c.num_epochs = 1                # passes over the training streams, when num_steps is 0
  c.steps_per_epoch = 0           # derived at start from corpus size, batch_size and bptt
  c.log_every = 50                # steps between log lines / metric writes
  c.eval_every = 500              # steps between validation evaluations (also at the end); 0 = every epoch
  c.checkpoint_every = 200        # steps between checkpoints (also at the end)
  c.keep_checkpoints = 3          # how many recent checkpoints to keep
  c.divergence_factor = 10.0     # stop when the loss exceeds this x |its initial value| (0: never)
  c.distributed = distributed.config()  # several processes, one per host or accelerator (README: Training core)
  c.mesh = mesh.config()          # the data x model device mesh (docs/training.md); default: data parallelism
  c.eval_splits = ("valid",)      # splits evaluated during training ("test" too in final configs)

  c.data = ml_collections.ConfigDict()
  c.data.path = "stdlib"          # "stdlib" (embedded), a text file, a dir with train/valid/test .txt,
                                  # "fetched:<name>" (python -m rnn_jax.data.fetch <name>) or "tfds:<name>"
  c.data.level = "char"           # "char" or "word" tokens
  c.data.encoding = "utf-8"       # the text files' encoding (e.g. "latin-1")
  c.data.max_vocab = 0            # word level: keep the most frequent tokens (0 = all)
  c.data.fractions = (0.9, 0.05, 0.05)  # in-order train/valid/test split of a single file
  c.data.batch_size = 32          # parallel streams in training
  c.data.eval_batch_size = 16     # parallel streams in evaluation
  c.data.bptt = 64                # truncated-BPTT window (time steps per batch)
  c.data.reset_probability = 0.0  # chance that a stream restarts from a zero carry at a training window
  c.data.tfds_dir = ""            # where TFDS prepares datasets ("" = ~/.cache/rnn_jax/tfds)
  c.data.download = False         # let TFDS download catalog datasets (needs internet)
  c.data.new_corpus_ok = False    # True: train a workdir's run on another corpus, through its saved vocabulary

  c.model = ml_collections.ConfigDict()
  c.model.cell = "lstm"           # any registered cell: rnn_jax.cells.names()
  c.model.matmul_dtype = "float32"  # "bfloat16": bf16 matmul operands, float32 accumulation, params and carries
  c.model.cell_clip = 0.0         # > 0: an LSTM's cell state clipped to [-cell_clip, cell_clip] at every step
  c.model.hidden_size = 256       # units per layer
  c.model.proj_size = 0           # cell "lstmp": the recurrent projection's width (0: none; other cells)
  c.model.num_layers = 2          # stacked layers
  c.model.embed_size = 256        # token embedding size
  c.model.embed_init_std = 1.0    # embeddings start N(0, std^2); Adam moves each entry ~learning_rate per
                                  # step, so a small start (0.1) leaves the input unread for hundreds of steps
  c.model.forget_bias = 1.0       # an LSTM's forget-gate bias at init (0: the gate starts half open, as
                                  # PyTorch's; shakespeare_char learns faster with it)
  c.model.dropout = 0.0           # dropout on non-recurrent connections (Zaremba et al. 2014)
  c.model.variational_dropout = False  # one dropout mask per sequence, shared over time
  c.model.tied = False            # share the embedding and softmax weights (needs embed_size == hidden_size)
  c.model.residual = False        # residual connections between layers of equal width
  c.model.init_scale = 0.0        # > 0: every weight U(-s, s) (Zaremba: 0.1); 0: the cells' own init
  c.model.unroll = 1              # lax.scan unroll
  c.model.remat = False           # recompute activations in the backward pass (memory for compute)

  c.optimizer = optim.default_config()
  c.optimizer.learning_rate = 2e-3
  c.optimizer.clip_norm = 5.0

  c.sample = ml_collections.ConfigDict()
  c.sample.prime = "The "         # text the sample continues
  c.sample.length = 300           # tokens to sample
  c.sample.temperature = 0.8      # softmax temperature (lower = more conservative)
  return c

"""Defaults shared by the handwriting configs; each named config overrides a few fields."""

import string

import ml_collections

from rnn_jax.train import distributed, optim


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.task = "recognition"          # "recognition" (BLSTM + CTC) or "generation" (MDN; conditional if window_components > 0)
  c.seed = 0                      # seeds init, batch order and sampling -- a run is reproducible from it
  c.num_steps = 1500              # optimizer steps
  c.steps_per_epoch = 0           # derived at start from the train split and batch_size
  c.log_every = 50                # steps between log lines / metric writes
  c.eval_every = 500              # steps between validation evaluations (also at the end)
  c.checkpoint_every = 500        # steps between checkpoints (also at the end)
  c.keep_checkpoints = 2          # how many recent checkpoints to keep
  c.divergence_factor = 10.0     # stop when the loss exceeds this x |its initial value| (0: never)
  c.distributed = distributed.config()  # several processes, one per host or accelerator (README: Training core)
  c.batch_size = 32               # sequences per batch (train and eval)

  c.data = ml_collections.ConfigDict()
  c.data.source = "synthetic"     # "synthetic" (Hershey fonts, embedded), "uji" (digits JSON) or "iam" (IAM-OnDB dir)
  c.data.path = ""                # the UJI JSON file ("fetched:uji_pen_digits") or the IAM-OnDB root
  c.data.tfds_dir = ""            # where TFDS prepares datasets ("" = ~/.cache/rnn_jax/tfds)
  c.data.height_normalize = False  # scale every sample to unit height (single characters)
  c.data.resample_step = 0.0      # > 0: resample strokes at this arc-length step (after height normalisation)
  c.data.pad_multiple = 32        # pad batches to a multiple of this many points (fewer compiled shapes)
  c.data.augment = 0.0            # strength of random affine distortions of training samples (0 = off)
  c.data.y_up = False             # --input ink files (recognize, eval): True if their y grows upward (a plot,
                                  # some pen tablets); InkML, UJI-style and strokes JSON are read y-down (screen)
  c.data.synthetic = ml_collections.ConfigDict()
  c.data.synthetic.seed = 0       # the synthetic corpus (every example is seeded by (seed, split, index))
  c.data.synthetic.sizes = (20000, 1000, 1000)  # train, valid, test examples
  c.data.synthetic.charset = string.ascii_lowercase  # characters of the random words
  c.data.synthetic.min_length = 3  # letters per word
  c.data.synthetic.max_length = 7
  c.data.synthetic.num_words = 1  # words per sample (joined by spaces)
  c.data.uji = ml_collections.ConfigDict()
  c.data.uji.valid_writers = 6    # the last writers form valid and test (writer-disjoint splits)
  c.data.uji.test_writers = 12

  c.model = ml_collections.ConfigDict()
  c.model.cell = "lstm"           # any registered cell: rnn_jax.cells.names()
  c.model.matmul_dtype = "float32"  # "bfloat16": bf16 matmul operands, float32 accumulation, params and carries
  c.model.hidden_size = 128       # units per layer (and direction)
  c.model.num_layers = 2          # stacked layers
  c.model.subsample = 2           # recognition: concatenate this many consecutive points per frame
  c.model.dropout = 0.0           # recognition: dropout between layers
  c.model.num_mixtures = 20       # generation: bivariate Gaussians in the MDN
  c.model.window_components = 0   # generation: Gaussians in the attention window (0 = unconditional)
  c.model.kappa_step = 0.05       # generation: initial mean window advance per point (~1 / points per char)

  c.optimizer = optim.default_config()
  c.optimizer.learning_rate = 3e-3
  c.optimizer.schedule = "cosine"
  c.optimizer.clip_norm = 1.0

  c.eval = ml_collections.ConfigDict()
  c.eval.beam_size = 8            # recognition: prefix beam search width on the test split
  c.eval.num_pictures = 4         # recognition: test samples drawn with their CTC alignment
  c.eval.biases = (0.0, 1.0, 3.0)  # generation: sampling biases b (Graves 2013, eq. 61-62)
  c.eval.num_samples = 4          # generation: unconditional samples per bias
  c.eval.sample_steps = 150       # generation: points per unconditional sample
  c.eval.texts = ("hello", "world", "handwriting")  # synthesis: texts to write
  c.eval.steps_per_char = 30      # synthesis: point budget per character (sampling stops at the text's end)
  return c

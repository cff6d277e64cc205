"""Defaults shared by the translation configs; each named config overrides a few fields."""

import ml_collections

from rnn_jax.train import distributed, optim


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0                      # seeds data generation/splits, init and dropout (per step via fold_in)
  c.num_steps = 1500              # optimizer steps
  c.steps_per_epoch = 0           # derived at start from the training pairs and batch size
  c.log_every = 100               # steps between log lines / metric writes
  c.eval_every = 500              # steps between validation evaluations (also at the end)
  c.checkpoint_every = 500        # steps between checkpoints (also at the end)
  c.keep_checkpoints = 2          # how many recent checkpoints to keep
  c.divergence_factor = 10.0     # stop when the loss exceeds this x |its initial value| (0: never)
  c.distributed = distributed.config()  # several processes, one per host or accelerator (README: Training core)
  c.label_smoothing = 0.0         # > 0: train against smoothed labels (optax.smooth_labels)

  c.data = ml_collections.ConfigDict()
  c.data.name = "numbers"         # numbers | files | tatoeba | tfds; setting data.source/target or data.tsv means files
  c.data.source = ""              # files: source-language file, one sentence per line
  c.data.target = ""              # files: target-language file, line-aligned with data.source
  c.data.tsv = ""                 # files: or one TSV, column 1 source, column 2 target
  c.data.valid_source = ""        # files: optional held-out files (else valid_fraction of train)
  c.data.valid_target = ""
  c.data.valid_tsv = ""
  c.data.test_source = ""         # files: optional test files (else test_fraction of train)
  c.data.test_target = ""
  c.data.test_tsv = ""
  c.data.valid_fraction = 0.05    # files: share of the training pairs held out when no valid files are given
  c.data.test_fraction = 0.05     # files: same for test
  c.data.tatoeba_zip = "fetched:tatoeba_fra_eng"  # tatoeba: python -m rnn_jax.data.fetch tatoeba_fra_eng, or a path
  c.data.tfds_name = "ted_hrlr_translate/pt_to_en"  # tfds: ted_hrlr_translate/pt_to_en or wmt14_translate/de-en
  c.data.tfds_dir = ""            # where TFDS prepares datasets ("" = ~/.cache/rnn_jax/tfds)
  c.data.download = False         # tfds: let TFDS download the catalog dataset (needs internet)
  c.data.source_lang = ""         # numbers: num2words language (en); tatoeba: fr or en; tfds: feature name (pt)
  c.data.target_lang = ""         # numbers: num2words language (fr); tfds: feature name (en)
  c.data.num_train = 20000        # numbers: training numbers
  c.data.num_valid = 500          # numbers, tatoeba: held-out pairs for validation
  c.data.num_test = 1000          # numbers, tatoeba: held-out pairs for the test figures
  c.data.max_digits = 6           # numbers: up to 999,999
  c.data.max_words = 0            # keep training pairs with at most this many words per side (0 = all)
  c.data.tokenizer = "word"       # word | sentencepiece (trained on train, saved in the workdir)
  c.data.source_vocab_size = 8000  # word: most frequent words kept; sentencepiece: vocabulary size
  c.data.target_vocab_size = 8000
  c.data.lowercase = False        # word tokenizer: lowercase everything
  c.data.max_tokens = 100         # truncate longer tokenized sentences (both sides)
  c.data.pad_to = 8               # round batch widths up to a multiple of this; 0 = pad all to the longest pair
  c.data.batch_size = 64          # training pairs per step (length-bucketed)
  c.data.eval_batch_size = 100    # pairs per evaluation/decoding batch

  c.model = ml_collections.ConfigDict()
  c.model.cell = "gru"            # any registered cell: rnn_jax.cells.names()
  c.model.matmul_dtype = "float32"  # "bfloat16": bf16 matmul operands, float32 accumulation, params and carries
  c.model.embed_size = 64         # source and target embeddings
  c.model.encoder_size = 64       # units per direction per encoder layer
  c.model.encoder_layers = 1      # stacked encoder layers
  c.model.bidirectional = True    # bidirectional encoder (memory width 2 * encoder_size)
  c.model.decoder_size = 128      # decoder units per layer (luong_dot needs == memory width)
  c.model.decoder_layers = 1      # stacked decoder layers
  c.model.attention = "bahdanau"  # bahdanau | luong_dot | luong_general | none (fixed context, Cho et al. 2014)
  c.model.attention_size = 64     # bahdanau's additive layer width
  c.model.output_size = 128       # width of the attentional output o_t before the softmax
  c.model.input_feeding = True    # luong: feed o_{t-1} to the decoder with the next token
  c.model.reverse_source = False  # reverse each source sentence (Sutskever et al. 2014)
  c.model.dropout = 0.0           # dropout on embeddings and on o_t (training only)

  c.optimizer = optim.default_config()
  c.optimizer.learning_rate = 3e-3
  c.optimizer.clip_norm = 5.0

  c.decode = ml_collections.ConfigDict()
  c.decode.beam_size = 5          # beam width of the beam-search figures and of --mode=translate (1 = greedy)
  c.decode.alpha = 0.6            # GNMT length normalisation exponent (0 = raw log-probability)
  c.decode.max_ratio = 2.0        # output limit: max_ratio * source tokens + max_offset ...
  c.decode.max_offset = 10
  c.decode.max_length = 120       # ... and at most this many tokens (static buffer)

  c.eval = ml_collections.ConfigDict()
  c.eval.valid_examples = 500     # validation pairs decoded (greedy) at each evaluation
  c.eval.length_buckets = (5, 10, 15, 20, 30, 50, 100)  # upper bounds (source words) of the BLEU-by-length buckets
  c.eval.heatmaps = 3             # attention heatmaps (PNG) of the first test sentences
  return c

"""Defaults shared by the speech configs; each named config overrides a few fields."""

import ml_collections

from rnn_jax.train import distributed, optim


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0                      # seeds init and dropout -- a run is reproducible from it and data.seed
  c.num_steps = 400               # optimizer steps
  c.steps_per_epoch = 0           # derived at start from data.sizes[0] and batch_size
  c.log_every = 50                # steps between log lines / metric writes
  c.eval_every = 200              # steps between validation evaluations (also at the end)
  c.checkpoint_every = 200        # steps between checkpoints (also at the end)
  c.keep_checkpoints = 2          # how many recent checkpoints to keep
  c.batch_size = 32               # utterances per batch (train and eval)
  c.divergence_factor = 10.0      # stop when the loss exceeds this x |its initial value| (0: never)
  c.distributed = distributed.config()  # several processes, one per host or accelerator (docs/training.md)

  c.data = ml_collections.ConfigDict()
  c.data.source = "dtmf"          # "dtmf" (synthetic keypad tones, embedded) or "fsdd" (spoken digit recordings)
  c.data.path = "fetched:fsdd"    # fsdd: the folder of {digit}_{speaker}_{index}.wav recordings
  c.data.tfds_dir = ""            # fsdd: where TFDS prepares the recordings ("" = ~/.cache/rnn_jax/tfds)
  c.data.seed = 0                 # the corpus: utterance i of split s is seeded by (seed, s, i)
  c.data.sizes = (100000, 300, 1000)  # train, valid, test utterances (train is generated as it is read)
  c.data.min_digits = 1           # digits per utterance
  c.data.max_digits = 7
  c.data.pause_ms = (40.0, 250.0)  # silence between digits (uniform range)
  c.data.edge_ms = (0.0, 300.0)   # silence before the first and after the last digit
  c.data.snr_db = (10.0, 30.0)    # white noise RMS this many dB below amplitude/sqrt(2) (dtmf) or fsdd.peak[0]
  c.data.pad_frames = 32          # pad batches to a multiple of this many frames (fewer compiled shapes)
  c.data.stats_examples = 256     # training utterances whose features give the normalising mean and std
  c.data.dtmf = ml_collections.ConfigDict()
  c.data.dtmf.tone_ms = (60.0, 200.0)  # duration of a digit's tone
  c.data.dtmf.drift = 0.015       # largest relative frequency offset at a tone's start and end
  c.data.dtmf.amplitude = (0.05, 0.9)  # peak of the tones
  c.data.fsdd = ml_collections.ConfigDict()
  c.data.fsdd.split = "speakers"  # "speakers": the two below are held out; "indices": by recording index
  c.data.fsdd.valid_speakers = ("lucas",)  # held out for validation (): training speakers' valid_indices
  c.data.fsdd.test_speakers = ("theo",)    # held out for the test: a voice the model never heard
  c.data.fsdd.test_indices = (0, 5)        # "indices": recordings [start, end) of every speaker are the test
  c.data.fsdd.valid_indices = (5, 10)      # ... and these validate (also "speakers" without valid_speakers)
  c.data.fsdd.peak = (0.3, 0.9)   # each recording is scaled to a random peak in this range

  c.features = ml_collections.ConfigDict()
  c.features.sample_rate = 8000   # Hz (the data's rate)
  c.features.window_ms = 25.0     # analysis window
  c.features.hop_ms = 10.0        # frame step
  c.features.num_mels = 40        # mel filterbank bands
  c.features.delta_order = 2      # 0: log-mels, 1: + deltas, 2: + delta-deltas
  c.features.utterance_norm = "none"  # per utterance over its frames: "mean" (CMN), "mean_var" (CMVN), "none"

  c.model = ml_collections.ConfigDict()
  c.model.cell = "lstm"           # any registered cell: rnn_jax.cells.names()
  c.model.matmul_dtype = "float32"  # "bfloat16": bf16 matmul operands, float32 accumulation, params and carries
  c.model.hidden_size = 64        # units per layer (and direction)
  c.model.num_layers = 2          # stacked layers
  c.model.bidirectional = True    # False: forward-only layers
  c.model.subsample = 2           # concatenate this many consecutive frames per step
  c.model.dropout = 0.0           # dropout between layers

  c.optimizer = optim.default_config()
  c.optimizer.learning_rate = 3e-3
  c.optimizer.schedule = "cosine"
  c.optimizer.clip_norm = 1.0

  c.augment = ml_collections.ConfigDict()   # training batches only (experiments/speech/augment.py)
  c.augment.speed = (1.0, 1.0)    # each utterance resampled to play this much faster (uniform; 1: off)
  c.augment.gain_db = (0.0, 0.0)  # and scaled by this gain
  c.augment.noise = False         # and given white noise ...
  c.augment.noise_db = (10.0, 30.0)  # ... this many dB below its RMS
  c.augment.freq_masks = 0        # SpecAugment: bands of mel channels set to the mean, per utterance
  c.augment.freq_mask_width = 8   # widest band (channels, the same in every delta order)
  c.augment.time_masks = 0        # spans of frames set to the mean, per utterance
  c.augment.time_mask_width = 8   # widest span (frames)

  c.sweep = ml_collections.ConfigDict()     # --mode=sweep: one run per depth and direction (sweep.py)
  c.sweep.depths = (1, 2, 3, 5)   # num_layers of the points
  c.sweep.directions = ("uni", "bi")  # forward-only and bidirectional layers
  c.sweep.parameters = 0          # every point's hidden size is matched to this count (0: that of c.model)

  c.eval = ml_collections.ConfigDict()
  c.eval.beam_size = 8            # prefix beam search width on the test split
  return c

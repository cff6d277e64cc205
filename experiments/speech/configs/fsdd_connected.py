"""BLSTM-CTC on connected spoken digits (1-7) made from Free Spoken Digit Dataset recordings; test speaker unheard.

  python -m rnn_jax.data.fetch fsdd        # once (offline: --from=a copy of the archive or of recordings/)
  python -m experiments.speech.main --config=experiments/speech/configs/fsdd_connected.py \
      --workdir=runs/speech/fsdd_connected

Speakers george, jackson, lucas and nicolas train on their recordings 0-44 and validate on 45-49; theo is the
test, a voice never heard. Features: 24 log-mel bands (wider than the base's 40, they keep less of each voice's
pitch harmonics) with deltas, normalised per utterance (mean and variance over its frames) before the training
split's statistics. Each training utterance is played 0.8-1.25 times as fast (speed perturbation, a stand-in for
other vocal tracts). Isolated digits: --config.data.max_digits=1.
Result (3x192 BLSTM, 1000 steps, 13 min on an idle 2-core x86_64 CPU, 2026-12-05): on theo 3.47 % digit error (beam 8;
best path 3.45 %), 87.2 % of strings right (1000 test utterances); --config.seed=1 and 2: 4.74 % and 4.79 %.
With 40 mel bands: 4.21, 5.96 and 6.54 %. experiments/speech/README.md.
"""

from experiments.speech.configs.base import base_config


def get_config():
  c = base_config()
  c.data.source = "fsdd"
  c.data.pause_ms = (30.0, 200.0)
  c.data.edge_ms = (0.0, 200.0)
  c.data.snr_db = (20.0, 40.0)
  c.data.fsdd.valid_speakers = ()          # validate on the training voices' recordings ...
  c.data.fsdd.valid_indices = (45, 50)     # ... 45-49 (theo's are the test)
  c.data.fsdd.test_speakers = ("theo",)
  c.features.utterance_norm = "mean_var"
  c.features.num_mels = 24
  c.augment.speed = (0.8, 1.25)
  c.model.hidden_size = 192
  c.model.num_layers = 3
  c.model.subsample = 3
  c.model.dropout = 0.2
  c.num_steps = 1000
  c.eval_every = 500
  c.checkpoint_every = 500
  return c

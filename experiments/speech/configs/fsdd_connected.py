"""BLSTM-CTC on connected spoken digits (1-7) made from Free Spoken Digit Dataset recordings; test speaker unheard.

  python -m rnn_jax.data.fetch fsdd        # once (offline: --from=a copy of the archive or of recordings/)
  python -m experiments.speech.main --config=experiments/speech/configs/fsdd_connected.py \
      --workdir=runs/speech/fsdd_connected

Speakers george, jackson, lucas and nicolas train on their recordings 0-44 and validate on 45-49; theo is the
test, a voice never heard. Features are normalised per utterance (mean and variance over its frames) before
the training split's statistics; each training utterance is played 0.85-1.15 times as fast (speed perturbation,
a stand-in for other vocal tracts). Isolated digits: --config.data.max_digits=1.
Result (800 steps, 2-core x86_64 CPU, 2026-12-04; 2.3 steps/s when the machine was idle): on theo 5.37 % digit
error, 80.7 % of strings right (1000 test utterances, best path and beam 8); 1.03 % digit error on the training
voices' recordings 45-49. Speed 0.9-1.1 for 600 steps: 6.44 %; without speed perturbation
(--config.augment.speed="(1.0, 1.0)"): 10.1 %. experiments/speech/README.md.
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
  c.augment.speed = (0.8, 1.25)
  c.model.hidden_size = 192
  c.model.num_layers = 3
  c.model.subsample = 3
  c.model.dropout = 0.2
  c.num_steps = 1000
  c.eval_every = 500
  c.checkpoint_every = 500
  return c

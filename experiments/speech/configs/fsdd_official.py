"""BLSTM-CTC on connected spoken digits (1-7) from Free Spoken Digit Dataset recordings, the dataset's own split.

  python -m rnn_jax.data.fetch fsdd
  python -m experiments.speech.main --config=experiments/speech/configs/fsdd_official.py \
      --workdir=runs/speech/fsdd_official

Every speaker is in every split: recordings with index 0-4 are the test (the dataset's test set), 5-9 validate,
10-49 train; so the test voices were heard, the recordings were not. fsdd_connected.py's data and features (the
harder, speaker-disjoint task) with 40 mel bands, a 3x128 BLSTM, 600 steps without speed perturbation.
Result (2-core x86_64 CPU, 2026-12-04): 0.66 % digit error, 97.5 % of strings right on 1000 test utterances
(best path and beam 8 alike; validation 1.59 % at the end); experiments/speech/README.md.
"""

from experiments.speech.configs import fsdd_connected


def get_config():
  c = fsdd_connected.get_config()
  c.features.num_mels = 40
  c.model.hidden_size = 128
  c.data.fsdd.split = "indices"
  c.data.fsdd.test_indices = (0, 5)
  c.data.fsdd.valid_indices = (5, 10)
  c.augment.speed = (1.0, 1.0)
  c.num_steps = 600
  c.eval_every = 300
  c.checkpoint_every = 300
  return c

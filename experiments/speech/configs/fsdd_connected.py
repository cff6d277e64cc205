"""BLSTM-CTC on connected spoken digits (1-7) made from Free Spoken Digit Dataset recordings; test speaker unheard.

  python -m rnn_jax.data.fetch fsdd        # once (offline: --from=a copy of the archive or of recordings/)
  python -m experiments.speech.main --config=experiments/speech/configs/fsdd_connected.py \
      --workdir=runs/speech/fsdd_connected

Speakers george, jackson, nicolas train; lucas validates; theo is the test. Isolated digits:
--config.data.max_digits=1. Result: experiments/speech/README.md.
"""

from experiments.speech.configs.base import base_config


def get_config():
  c = base_config()
  c.data.source = "fsdd"
  c.data.pause_ms = (30.0, 200.0)
  c.data.edge_ms = (0.0, 200.0)
  c.data.snr_db = (20.0, 40.0)
  c.data.fsdd.valid_speakers = ("lucas",)
  c.data.fsdd.test_speakers = ("theo",)
  c.model.hidden_size = 128
  c.model.num_layers = 3
  c.model.subsample = 3
  c.model.dropout = 0.2
  c.num_steps = 800
  c.eval_every = 400
  c.checkpoint_every = 400
  return c

"""fsdd_connected (40 mels, 3x128) with augmentation: speed, gain and noise on waves, SpecAugment-style masks.

  python -m rnn_jax.data.fetch fsdd
  python -m experiments.speech.main --config=experiments/speech/configs/fsdd_augmented.py \
      --workdir=runs/speech/fsdd_augmented

A few training voices: the unheard test speaker is where fsdd_connected loses its digits. Each training
utterance is played 0.85-1.15 times as fast (a shorter or longer vocal tract, a faster or slower talker),
scaled by -6..+6 dB and given white noise 15-35 dB below its RMS; two bands of up to 8 mel channels and two
spans of up to 6 frames are masked. Measured with three training voices and no per-utterance normalisation
(add --config.data.fsdd.valid_speakers="('lucas',)" --config.features.utterance_norm=none): 14.7 % digit error
on theo after 800 steps, behind the same run without augmentation (12.9 %); experiments/speech/README.md.
"""

from experiments.speech.configs import fsdd_connected


def get_config():
  c = fsdd_connected.get_config()
  c.features.num_mels = 40
  c.model.hidden_size = 128
  c.augment.speed = (0.85, 1.15)
  c.augment.gain_db = (-6.0, 6.0)
  c.augment.noise = True
  c.augment.noise_db = (15.0, 35.0)
  c.augment.freq_masks = 2
  c.augment.freq_mask_width = 8
  c.augment.time_masks = 2
  c.augment.time_mask_width = 6
  c.num_steps = 800
  c.eval_every = 400
  c.checkpoint_every = 200
  return c

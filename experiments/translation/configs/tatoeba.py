"""Tatoeba French -> English (sentences of at most 15 words, 2,000 held-out test pairs), GRU + Bahdanau attention.

  python -m rnn_jax.data.fetch tatoeba_fra_eng         # once (offline: --from=PATH to a downloaded fra-eng.zip)
  nice -n 10 python -m experiments.translation.main --config=experiments/translation/configs/tatoeba.py \
      --workdir=runs/translation_tatoeba_attention
  # the fixed-context baseline (Cho et al. 2014):
  nice -n 10 python -m experiments.translation.main --config=experiments/translation/configs/tatoeba.py \
      --config.model.attention=none --workdir=runs/translation_tatoeba_none

Another copy of fra-eng.zip: --config.data.tatoeba_zip=PATH. Figures and training times on the 2-core
CPU are in README.md.
"""

from experiments.translation.configs.base import base_config


def get_config():
  c = base_config()
  c.num_steps = 4000
  c.log_every = 100
  c.eval_every = 2000
  c.checkpoint_every = 250
  c.label_smoothing = 0.1

  c.data.name = "tatoeba"
  c.data.source_lang = "fr"
  c.data.max_words = 15
  c.data.num_valid = 500
  c.data.num_test = 2000
  c.data.tokenizer = "sentencepiece"
  c.data.source_vocab_size = 4000
  c.data.target_vocab_size = 4000
  c.data.batch_size = 64
  c.data.max_tokens = 23          # < 1% of pairs are longer (sentencepiece tokens)
  c.data.pad_to = 12              # batch widths 12 or 24: few shapes to compile

  c.model.embed_size = 256
  c.model.encoder_size = 256
  c.model.decoder_size = 256
  c.model.attention_size = 256
  c.model.output_size = 256
  c.model.dropout = 0.1

  c.optimizer.learning_rate = 2e-3
  c.optimizer.schedule = "warmup_cosine"
  c.optimizer.warmup_steps = 200

  c.eval.valid_examples = 300
  c.eval.length_buckets = (3, 5, 7, 9, 11, 13, 15)
  return c

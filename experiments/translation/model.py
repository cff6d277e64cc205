"""Encoder-decoder translation model with attention, as pure functions of a param pytree.

Encoder: source embedding -> stacked (bidirectional) recurrent layers over right-padded
sources with lengths (`rnn_jax.scan.run_stack`); its outputs are the memory `[B, S, M]`
(M = 2 x encoder size when bidirectional) and its top layer's final hidden states (both
directions concatenated) the summary `[B, M]`. Every leaf of each decoder layer's
initial carry is `tanh(summary W + b)` (Bahdanau et al. 2014 initialise from the backward state).

Decoder, one step per target token (`cell.step` under `lax.scan` for teacher forcing; the
same `step` drives greedy and beam search):
  attention="bahdanau" (Bahdanau et al. 2014): the previous top hidden state queries the
    memory; `c_t` is fed to the recurrent input with the embedding, and
    `o_t = tanh([s_t; c_t; e_t] W_o)`.
  attention="luong_dot" | "luong_general" (Luong et al. 2015): the new top hidden state
    `s_t` queries the memory, `o_t = tanh([c_t; s_t] W_c)`; with `input_feeding` the
    previous `o_{t-1}` is fed with the embedding.
  attention="none" (Cho et al. 2014): the fixed summary `c` replaces `c_t` everywhere
    (recurrent input and output layer) -- the fixed-length-context baseline.
  logits = o_t W_out + b_out.
`reverse_source` reverses each source within its length (Sutskever et al. 2014).
Dropout (training only) acts on the embeddings and on `o_t` before the softmax.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from rnn_jax import attention as attn_lib
from rnn_jax import cells, layers, ops, scan
from rnn_jax.cells import stack

ATTENTIONS = ("bahdanau", "luong_dot", "luong_general", "none")


def reverse_within_lengths(x_BxS: jax.Array, lengths_B: jax.Array) -> jax.Array:
  """Reverses the first `lengths[b]` entries of each row; padding stays where it is."""
  positions_S = jnp.arange(x_BxS.shape[1])
  index_BxS = jnp.where(ops.mask_from_lengths(lengths_B, x_BxS.shape[1]),
                        lengths_B[:, None] - 1 - positions_S[None, :], positions_S[None, :])
  return jnp.take_along_axis(x_BxS, index_BxS, axis=1)


@dataclasses.dataclass(frozen=True)
class Seq2Seq(cells.WithCell):
  """Static options (hashable: bound methods are valid static `step_fn`s for `rnn_jax.decoding`)."""
  source_vocab: int
  target_vocab: int
  cell: str = "lstm"
  embed_size: int = 128
  encoder_size: int = 128     # per direction
  encoder_layers: int = 1
  bidirectional: bool = True
  decoder_size: int = 256
  decoder_layers: int = 1
  attention: str = "bahdanau"
  attention_size: int = 128   # bahdanau's additive layer
  output_size: int = 256      # width of o_t
  input_feeding: bool = True  # luong only
  reverse_source: bool = False
  dropout: float = 0.0
  matmul_dtype: str = "float32"  # "bfloat16": mixed-precision recurrent matmuls (rnn_jax.ops.matmul)

  def __post_init__(self):
    if self.attention not in ATTENTIONS:
      raise ValueError(f"attention must be one of {ATTENTIONS}, got {self.attention!r}")
    if self.attention == "luong_dot" and self.decoder_size != self.memory_size:
      raise ValueError(f"luong_dot attention needs decoder_size == memory size ({self.memory_size}), "
                       f"got {self.decoder_size}")

  @property
  def memory_size(self) -> int:
    return self.encoder_size * (2 if self.bidirectional else 1)

  def _decoder_input_size(self) -> int:
    if self.attention in ("bahdanau", "none"):
      return self.embed_size + self.memory_size
    return self.embed_size + (self.output_size if self.input_feeding else 0)

  def init(self, key: jax.Array):
    cell = self.pure_cell
    keys = iter(jax.random.split(key, 8 + self.decoder_layers))
    decoder, size = [], self._decoder_input_size()
    for _ in range(self.decoder_layers):
      decoder.append(cell.init(next(keys), size, self.decoder_size))
      size = self.decoder_size
    num_leaves = len(jax.tree.leaves(cell.initial_carry(decoder[0], (1,))))
    bridge_key = next(keys)
    bridge = [[layers.dense_init(jax.random.fold_in(bridge_key, layer * num_leaves + leaf), self.memory_size,
                                 self.decoder_size)
               for leaf in range(num_leaves)] for layer in range(self.decoder_layers)]
    out_in = {"bahdanau": self.decoder_size + self.memory_size + self.embed_size,
              "none": self.decoder_size + self.memory_size + self.embed_size,
              "luong_dot": self.memory_size + self.decoder_size,
              "luong_general": self.memory_size + self.decoder_size}[self.attention]
    params = {
        "source_embed": jax.random.normal(next(keys), (self.source_vocab, self.embed_size)) / jnp.sqrt(self.embed_size),
        "target_embed": jax.random.normal(next(keys), (self.target_vocab, self.embed_size)) / jnp.sqrt(self.embed_size),
        "encoder": scan.init_stack(next(keys), cell, self.embed_size, self.encoder_size, self.encoder_layers,
                                   self.bidirectional),
        "decoder": decoder,
        "bridge": bridge,
        "output": layers.dense_init(next(keys), out_in, self.output_size),
        "logits": layers.dense_init(next(keys), self.output_size, self.target_vocab),
    }
    if self.attention != "none":
      params["attention"] = attn_lib.init(next(keys), self.attention, self.decoder_size, self.memory_size,
                                          self.attention_size)
    return params

  # ----------------------------------------------------------------------------- encoder

  def encode(self, params, source_BxS, source_lengths_B, rng=None, train: bool = False):
    """The decoder's initial state (a pytree with batch-leading leaves) for a padded source batch."""
    cell = self.pure_cell
    if self.reverse_source:
      source_BxS = reverse_within_lengths(source_BxS, source_lengths_B)
    x_BxSxE = params["source_embed"][source_BxS]
    if train and self.dropout > 0:
      x_BxSxE = scan.dropout(rng, self.dropout, x_BxSxE)
    carries, memory_BxSxM = scan.run_stack(cell, params["encoder"], x_BxSxE, lengths=source_lengths_B,
                                           bidirectional=self.bidirectional)
    top = carries[-1]
    if self.bidirectional:
      summary_BxM = jnp.concatenate([cell.carry_hidden(top[0]), cell.carry_hidden(top[1])], axis=-1)
    else:
      summary_BxM = cell.carry_hidden(top)
    batch = source_BxS.shape[0]
    dec_carries = []
    for layer_params, bridges in zip(params["decoder"], params["bridge"]):
      treedef = jax.tree.structure(cell.initial_carry(layer_params, (batch,)))
      dec_carries.append(jax.tree.unflatten(treedef, [jnp.tanh(layers.dense(p, summary_BxM)) for p in bridges]))
    mask_BxS = ops.mask_from_lengths(source_lengths_B, source_BxS.shape[1])
    state = {"carries": dec_carries, "mask": mask_BxS}
    if self.attention == "none":
      state["context"] = summary_BxM
    else:
      state["memory"] = memory_BxSxM
      state["keys"] = attn_lib.prepare(self.attention, params["attention"], memory_BxSxM)
    if self.attention.startswith("luong") and self.input_feeding:
      state["feed"] = jnp.zeros((batch, self.output_size), memory_BxSxM.dtype)
    return state

  # ----------------------------------------------------------------------------- decoder

  def _read(self, params, state, query_BxQ):
    return attn_lib.attend(self.attention, params["attention"], query_BxQ, state["memory"], state["keys"],
                           state["mask"])

  def _recur(self, params, carries, x_BxI):
    carries, ys = stack.step_stack(self.pure_cell, params["decoder"], carries, x_BxI)
    return carries, ys[-1]

  def step_embedded(self, params, state, emb_BxE):
    """One decoder step from an embedded input token: `(state, o_BxD, attention_BxS)`."""
    if self.attention in ("bahdanau", "none"):
      if self.attention == "none":
        context_BxM = state["context"]
        weights_BxS = jnp.zeros(state["mask"].shape, emb_BxE.dtype)
      else:
        query_BxH = self.pure_cell.carry_hidden(state["carries"][-1])
        context_BxM, weights_BxS = self._read(params, state, query_BxH)
      carries, s_BxH = self._recur(params, state["carries"], jnp.concatenate([emb_BxE, context_BxM], axis=-1))
      o_BxD = jnp.tanh(layers.dense(params["output"], jnp.concatenate([s_BxH, context_BxM, emb_BxE], axis=-1)))
      return {**state, "carries": carries}, o_BxD, weights_BxS
    x_BxI = jnp.concatenate([emb_BxE, state["feed"]], axis=-1) if self.input_feeding else emb_BxE
    carries, s_BxH = self._recur(params, state["carries"], x_BxI)
    context_BxM, weights_BxS = self._read(params, state, s_BxH)
    o_BxD = jnp.tanh(layers.dense(params["output"], jnp.concatenate([context_BxM, s_BxH], axis=-1)))
    state = {**state, "carries": carries}
    if self.input_feeding:
      state["feed"] = o_BxD
    return state, o_BxD, weights_BxS

  def step(self, params, state, token_B):
    """Decoding step for `rnn_jax.decoding`: `(state, log_probs_BxV, attention_BxS)`."""
    state, o_BxD, weights_BxS = self.step_embedded(params, state, params["target_embed"][token_B])
    return state, jax.nn.log_softmax(layers.dense(params["logits"], o_BxD)), weights_BxS

  def teacher_forced(self, params, batch, rng=None, train: bool = False):
    """`(logits_BxTxV, attention_BxTxS)` reading the reference target (`target_in`, BOS first)."""
    rngs = jax.random.split(rng, 3) if (train and self.dropout > 0) else [None] * 3
    state = self.encode(params, batch["source"], batch["source_lengths"], rngs[0], train)
    emb_BxTxE = params["target_embed"][batch["target_in"]]
    if rngs[1] is not None:
      emb_BxTxE = scan.dropout(rngs[1], self.dropout, emb_BxTxE)

    def body(state, emb_BxE):
      state, o_BxD, weights_BxS = self.step_embedded(params, state, emb_BxE)
      return state, (o_BxD, weights_BxS)

    _, (o_TxBxD, weights_TxBxS) = jax.lax.scan(body, state, jnp.swapaxes(emb_BxTxE, 0, 1))
    o_BxTxD = jnp.swapaxes(o_TxBxD, 0, 1)
    if rngs[2] is not None:
      o_BxTxD = scan.dropout(rngs[2], self.dropout, o_BxTxD)
    return layers.dense(params["logits"], o_BxTxD), jnp.swapaxes(weights_TxBxS, 0, 1)

  def loss(self, params, batch, rng=None, train: bool = False, label_smoothing: float = 0.0):
    """Mean per-token cross-entropy over real target tokens (padding masked): `(loss, metrics)`.

    Without `label_smoothing` the loss is the negative log-likelihood per token. With it, the loss is against
    smoothed labels (optax.smooth_labels) and `metrics["nll"]` is the plain negative log-likelihood per token.
    """
    logits_BxTxV, _ = self.teacher_forced(params, batch, rng, train)
    mask_BxT = ops.mask_from_lengths(batch["target_lengths"], logits_BxTxV.shape[1]).astype(jnp.float32)
    labels_BxTxV = jax.nn.one_hot(batch["target_out"], self.target_vocab)
    nll_BxT = optax.softmax_cross_entropy(logits_BxTxV, labels_BxTxV)
    tokens = jnp.maximum(jnp.sum(mask_BxT), 1.0)
    correct_BxT = (jnp.argmax(logits_BxTxV, axis=-1) == batch["target_out"]).astype(jnp.float32)
    metrics = {"token_accuracy": jnp.sum(correct_BxT * mask_BxT) / tokens}
    if label_smoothing <= 0:
      return jnp.sum(nll_BxT * mask_BxT) / tokens, metrics
    loss_BxT = optax.softmax_cross_entropy(logits_BxTxV, optax.smooth_labels(labels_BxTxV, label_smoothing))
    return jnp.sum(loss_BxT * mask_BxT) / tokens, dict(metrics, nll=jnp.sum(nll_BxT * mask_BxT) / tokens)

"""The language model: embedding -> stacked recurrent network -> softmax over the vocabulary.

Params: `{"embed": [V, E], "rnn": scan.init_stack(...), "out_b": [V]}` plus `"out_w": [O, V]`
unless the embeddings are tied (then `logits = h @ embed.T`, which needs E == O); O is the
cell's output width (H, or `proj_size` for the "lstmp" cell). `param_axes` names every param's
logical axes for a `data x model` mesh (`rnn_jax.train.mesh`).
Dropout (Zaremba et al. 2014) acts on non-recurrent connections only: the embeddings,
between layers, and before the softmax; `variational` shares each mask over time.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from jax.sharding import PartitionSpec as P

from rnn_jax import cells, ops, scan


@dataclasses.dataclass(frozen=True)
class LanguageModel(cells.WithCell):
  """Static model options (hashable, so methods can be jitted with the model static)."""
  vocab_size: int
  cell: str = "lstm"
  hidden_size: int = 256
  num_layers: int = 2
  embed_size: int = 256
  dropout: float = 0.0
  variational_dropout: bool = False
  tied: bool = False
  residual: bool = False
  init_scale: float = 0.0
  unroll: int = 1
  remat: bool = False
  matmul_dtype: str = "float32"   # "bfloat16": mixed precision in the recurrence and the softmax layer
  proj_size: int = 0              # the "lstmp" cell's projection width (0: no projection)
  cell_clip: float = 0.0          # > 0: the LSTM's cell state clipped to [-cell_clip, cell_clip]
  embed_init_std: float = 1.0     # embeddings start N(0, embed_init_std^2)
  forget_bias: float = 1.0        # an LSTM's forget-gate bias at init

  @property
  def cell_options(self) -> dict:
    return {**({"proj_size": self.proj_size} if self.proj_size else {}),
            **({"cell_clip": self.cell_clip} if self.cell_clip else {}),
            **({"forget_bias": self.forget_bias} if self.forget_bias != 1.0 else {})}

  @property
  def output_size(self) -> int:
    return self.proj_size or self.hidden_size

  def init(self, key: jax.Array):
    """Fresh params: embeddings N(0, embed_init_std^2) (as PyTorch's, Flax's and Haiku's embeddings), the cells'
    own init, a Glorot softmax layer; with `init_scale > 0` every weight is U(-s, s) as in Zaremba et al."""
    k_embed, k_rnn, k_out, k_uniform = jax.random.split(key, 4)
    params = {
        "embed": self.embed_init_std * jax.random.normal(k_embed, (self.vocab_size, self.embed_size)),
        "rnn": scan.init_stack(k_rnn, self.pure_cell, self.embed_size, self.hidden_size, self.num_layers),
        "out_b": jnp.zeros((self.vocab_size,)),
    }
    if not self.tied:
      params["out_w"] = jax.nn.initializers.glorot_uniform()(k_out, (self.output_size, self.vocab_size))
    if self.init_scale > 0:
      leaves, treedef = jax.tree.flatten(params)
      keys = jax.random.split(k_uniform, len(leaves))
      leaves = [jax.random.uniform(k, x.shape, x.dtype, -self.init_scale, self.init_scale)
                for k, x in zip(keys, leaves)]
      params = jax.tree.unflatten(treedef, leaves)
    return params

  def param_axes(self, params):
    """The logical axes of every param (`PartitionSpec`s of names): the vocabulary, the gates (4H) and the cell
    units (H) are what `rnn_jax.train.mesh.RULES` split over the model axis."""
    cell_axes = {"w_x": P("embed", "gates"), "w_h": P("proj", "gates"), "b": P("gates"), "w_p": P("hidden", "proj")}
    rnn = [{name: cell_axes.get(name) or jax.tree.map(lambda _: P(), w) for name, w in layer.items()}
           for layer in params["rnn"]]
    axes = {"embed": P("vocab", "embed"), "rnn": rnn, "out_b": P("vocab"), "out_w": P("proj", "vocab")}
    return {name: axes[name] for name in params}

  def initial_carries(self, params, batch_size: int):
    return scan.initial_stack_carry(self.pure_cell, params["rnn"], (batch_size,))

  def apply(self, params, carries, tokens_BxT, rng=None, train: bool = False):
    """`(logits_BxTxV, final_carries)`; `rng` is needed only when training with dropout."""
    rate = self.dropout if train else 0.0
    drop_rngs = jax.random.split(rng, 3) if rate > 0 else [None] * 3
    x_BxTxE = params["embed"][tokens_BxT]
    if rate > 0:
      x_BxTxE = scan.dropout(drop_rngs[0], rate, x_BxTxE, variational=self.variational_dropout)
    carries, h_BxTxH = scan.run_stack(
        self.pure_cell, params["rnn"], x_BxTxE, initial_carries=carries, residual=self.residual,
        dropout_rate=rate, dropout_rng=drop_rngs[1], variational_dropout=self.variational_dropout,
        unroll=self.unroll, remat=self.remat)
    if rate > 0:
      h_BxTxH = scan.dropout(drop_rngs[2], rate, h_BxTxH, variational=self.variational_dropout)
    out_w_HxV = params["embed"].T if self.tied else params["out_w"]
    logits_BxTxV = ops.matmul(h_BxTxH, out_w_HxV, self.matmul_dtype) + params["out_b"][None, None, :]
    return logits_BxTxV, carries

  def loss_fn(self, params, carries, batch, rng, train: bool):
    """Mean next-token cross-entropy (nats) over a TBPTT window.

    batch: `inputs_BxT`, `targets_BxT` int32 and `reset_B` bool (True at the first
    window of an epoch: the carries restart from zero). The incoming carries are
    constants (stopped gradient): truncated backpropagation through time.
    """
    reset_B = batch["reset"]
    carries = jax.tree.map(lambda c: jnp.where(reset_B[:, None], jnp.zeros_like(c), c), carries)
    carries = jax.lax.stop_gradient(carries)
    logits, carries = self.apply(params, carries, batch["inputs"], rng, train)
    nll_BxT = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"])
    metrics = {} if train else {"stream_nll_B": nll_BxT.mean(axis=1)}  # evaluation's per-stream view
    return nll_BxT.mean(), (metrics, carries)

  def sample(self, params, prime_P, length: int, temperature: float, rng):
    """`[length]` token ids continuing `prime_P` (at least one token), drawn at `temperature` (0: the most
    likely token at each step)."""
    logits, carries = self.apply(params, self.initial_carries(params, 1), prime_P[None, :])

    def body(state, key):
      carries, logits_1xV = state
      drawn_1 = jax.random.categorical(key, logits_1xV / jnp.where(temperature > 0, temperature, 1.0))
      token_1 = jnp.where(temperature > 0, drawn_1, jnp.argmax(logits_1xV, axis=-1))
      logits, carries = self.apply(params, carries, token_1[:, None])
      return (carries, logits[:, -1]), token_1[0]

    _, tokens = jax.lax.scan(body, (carries, logits[:, -1]), jax.random.split(rng, length))
    return tokens

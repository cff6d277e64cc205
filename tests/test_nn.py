"""The flax.linen wrapper shares its param layout with the pure runner."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

from rnn_jax import cells, scan
from rnn_jax import nn as rnn_nn


class Tagger(nn.Module):
  """Embed -> bidirectional GRU stack -> Dense: composes with the usual linen layers."""

  @nn.compact
  def __call__(self, tokens_BxT, lengths_B, deterministic=True):
    x = nn.Embed(10, 8)(tokens_BxT)
    _, ys = rnn_nn.RNN(cell="gru", hidden_size=6, num_layers=2, bidirectional=True, dropout_rate=0.5,
                       name="rnn")(x, lengths=lengths_B, deterministic=deterministic)
    return nn.Dense(3)(ys)


def test_module_takes_init_stack_params_and_runs_the_layers_in_turn():
  module = rnn_nn.RNN(cell="lstm", hidden_size=5, num_layers=2, bidirectional=True, residual=True,
                      cell_options={"peepholes": True})
  cell = cells.get("lstm", peepholes=True)
  xs = jax.random.normal(jax.random.PRNGKey(0), (3, 7, 4))
  lengths = jnp.array([7, 2, 5])
  variables = module.init(jax.random.PRNGKey(1), xs, lengths=lengths)
  layers = scan.init_stack(jax.random.PRNGKey(2), cell, 4, 5, num_layers=2, bidirectional=True)
  assert jax.tree.map(jnp.shape, variables["params"]["layers"]) == jax.tree.map(jnp.shape, layers)
  carries, ys = module.apply({"params": {"layers": layers}}, xs, lengths=lengths)
  # The same network, one direction and one layer at a time; the second layer adds its input.
  layer_input, expected_carries = xs, []
  for layer, p in enumerate(layers):
    carry_f, ys_f = scan.run(cell, p["forward"], layer_input, lengths=lengths)
    carry_b, ys_b = scan.run(cell, p["backward"], layer_input, lengths=lengths, reverse=True)
    layer_output = jnp.concatenate([ys_f, ys_b], axis=-1) + (layer_input if layer else 0)
    expected_carries.append((carry_f, carry_b))
    layer_input = layer_output * (jnp.arange(7)[None, :, None] < lengths[:, None, None])
  np.testing.assert_allclose(ys, layer_input, atol=1e-6)
  for a, b in zip(jax.tree.leaves(carries), jax.tree.leaves(expected_carries)):
    np.testing.assert_allclose(a, b, atol=1e-6)
  zero = module.initial_carries(variables, (3,))
  assert jax.tree.structure(zero) == jax.tree.structure(carries)
  assert all(np.all(np.asarray(leaf) == 0) and leaf.shape == (3, 5) for leaf in jax.tree.leaves(zero))


def test_linen_model_trains_with_flax_train_state_and_dropout():
  model = Tagger()
  tokens = jax.random.randint(jax.random.PRNGKey(0), (4, 6), 0, 10)
  labels = tokens % 3
  lengths = jnp.array([6, 6, 4, 3])
  params = model.init(jax.random.PRNGKey(1), tokens, lengths)["params"]
  state = train_state.TrainState.create(apply_fn=model.apply, params=params, tx=optax.adam(0.05))

  @jax.jit
  def step(state, rng):
    def loss_fn(params):
      logits = state.apply_fn({"params": params}, tokens, lengths, deterministic=False, rngs={"dropout": rng})
      return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    return state.apply_gradients(grads=grads), loss

  losses = []
  for i in range(60):
    state, loss = step(state, jax.random.PRNGKey(i))
    losses.append(float(loss))
  assert losses[-1] < 0.5 * losses[0]
  a = model.apply({"params": state.params}, tokens, lengths, deterministic=False, rngs={"dropout": jax.random.PRNGKey(0)})
  b = model.apply({"params": state.params}, tokens, lengths, deterministic=False, rngs={"dropout": jax.random.PRNGKey(1)})
  assert not np.allclose(a, b)  # dropout is active and drawn from the "dropout" stream

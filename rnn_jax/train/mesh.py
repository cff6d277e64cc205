"""Where a run's arrays live: a 2-D `data x model` mesh of every device of every process.

  config.mesh.data, config.mesh.model = -1, 2     # -1: the devices the model axis leaves
  layout = mesh.Layout.from_config(config, num_devices=None)
  state = layout.init_state(make_state, key, task.param_axes)   # params split over "model", the rest replicated
  batch = layout.shard_batch(task.train_batch(step))            # rows split over "data"
  step = layout.train_step(loss_fn, state)                      # jitted with these in/out shardings

The batch is split over `data`; the model's params over `model`, as the task names their axes
(`Task.param_axes`: a tree of logical `PartitionSpec`s, e.g. `P("vocab", "embed")`) and `RULES` map
logical axes to mesh axes (flax's logical-axis rules, as in t5x). The optimizer state follows its
params (`optax.tree_map_params`); the model state (e.g. TBPTT carries) is split over `data` on its
leading (batch) axis. A mesh of `model=1` is plain data parallelism: everything replicated, the
gradient all-reduced by XLA. With `model>1` the state is made by a jitted init straight into its
shards, so no device ever holds the whole model.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import ml_collections
import numpy as np
import optax
from absl import logging
from flax import linen as nn
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from rnn_jax.train.distributed import process_rows
from rnn_jax.train.errors import MeshError
from rnn_jax.train.step import train_step

# Logical axis -> mesh axis (None: replicated). Params name their axes with the logical names.
RULES = (("batch", "data"), ("vocab", "model"), ("gates", "model"), ("hidden", "model"), ("embed", None),
         ("proj", None))


def config() -> ml_collections.ConfigDict:
  """The `config.mesh` fields of a run; the defaults are data parallelism over every device."""
  c = ml_collections.ConfigDict()
  c.data = -1    # devices along the batch axis (-1: all those the model axis leaves)
  c.model = 1    # devices each param is split over (its axes named by the task, mapped by `rules`)
  c.rules = RULES  # (logical axis, mesh axis or None) pairs: which param axes go to "model"
  return c


def mesh_shape(data: int, model: int, device_count: int) -> tuple[int, int]:
  """`(data, model)` with `data=-1` resolved; MeshError naming config.mesh when the devices do not fit."""
  if model < 1 or not (data == -1 or data >= 1):
    raise MeshError(f"config.mesh.model must be >= 1 and config.mesh.data >= 1 or -1, got data={data}, "
                     f"model={model}")
  if data == -1:
    if device_count % model:
      raise MeshError(f"config.mesh.model={model} does not divide the {device_count} devices: choose a divisor")
    data = device_count // model
  if data * model > device_count:
    raise MeshError(f"config.mesh data={data} x model={model} needs {data * model} devices, "
                     f"{device_count} are available: use a smaller mesh")
  return data, model


@dataclasses.dataclass(frozen=True)
class Layout:
  """A `data x model` mesh and the logical-axis rules that place params on it."""
  mesh: Mesh
  rules: tuple = RULES

  @classmethod
  def create(cls, data: int = -1, model: int = 1, rules=RULES, num_devices: int | None = None) -> "Layout":
    """The first `data * model` devices (`num_devices`: of the first that many; one process only) as a
    `data x model` mesh, the model axis innermost (neighbouring devices, within a process)."""
    if num_devices is not None and jax.process_count() > 1:
      raise ValueError("num_devices applies to a single process; with several, every device takes part")
    devices = jax.devices()[:num_devices]
    data, model = mesh_shape(data, model, len(devices))
    if jax.process_count() > 1 and (data * model != len(devices) or jax.local_device_count() % model):
      raise MeshError(f"with {jax.process_count()} processes the mesh must hold every device and each "
                       f"process whole model groups: config.mesh data={data} x model={model} does not fit "
                       f"{jax.local_device_count()} devices per process")
    grid = np.asarray(devices[:data * model]).reshape(data, model)
    return cls(Mesh(grid, ("data", "model"), axis_types=(AxisType.Auto, AxisType.Auto)),
               tuple(tuple(rule) for rule in rules))

  @classmethod
  def from_config(cls, run_config, num_devices: int | None = None) -> "Layout":
    """From `config.mesh` (or `config.distributed.mesh`); without either, data parallelism."""
    c = run_config.get("mesh") or run_config.get("distributed", {}).get("mesh") or config()
    return cls.create(c.data, c.model, c.rules, num_devices)

  @property
  def shape(self) -> dict:
    return dict(self.mesh.shape)

  @property
  def replicated(self) -> NamedSharding:
    return NamedSharding(self.mesh, PartitionSpec())

  @property
  def batch_sharding(self) -> NamedSharding:
    return NamedSharding(self.mesh, PartitionSpec("data"))

  def shard_batch(self, batch):
    """This process's rows of the global `batch` (the same in every process), split over `data`."""
    data = self.shape["data"]

    def put(x):
      if np.ndim(x) == 0 or x.shape[0] % data:
        raise ValueError(f"batch leading dimension {np.shape(x)} must divide evenly over {data} devices")
      return jax.make_array_from_process_local_data(self.batch_sharding, np.asarray(x)[process_rows(x.shape[0])])
    return jax.tree.map(put, batch)

  def replicate(self, tree):
    """The same values on every device."""
    return put(tree, jax.tree.map(lambda _: self.replicated, tree))

  def param_specs(self, params, param_axes: Callable | None):
    """Mesh `PartitionSpec`s of `params` (arrays or shapes) from their logical axes; an axis whose size the
    mesh axis does not divide is replicated (logged)."""
    if param_axes is None:
      return jax.tree.map(lambda _: PartitionSpec(), params)
    specs = nn.logical_to_mesh(param_axes(params), self.rules)
    return jax.tree.map(self._divisible, params, specs, is_leaf=lambda x: isinstance(x, PartitionSpec))

  def _divisible(self, leaf, spec: PartitionSpec) -> PartitionSpec:
    axes = []
    for size, axis in zip(leaf.shape, tuple(spec) + (None,) * (len(leaf.shape) - len(spec))):
      if axis is not None and size % self.shape[axis]:
        logging.warning("a param of shape %s is replicated on its axis of %d, which does not divide over %s=%d",
                        leaf.shape, size, axis, self.shape[axis])
        axis = None
      axes.append(axis)
    return PartitionSpec(*axes)

  def state_shardings(self, state, param_axes: Callable | None = None):
    """`NamedSharding`s of a `TrainState` (arrays or shapes): params as named, the optimizer's moments as
    their params, the model state split over `data` on its leading axis where it divides, the rest
    replicated."""
    params = self.param_specs(state.params, param_axes)
    is_spec = lambda x: isinstance(x, PartitionSpec)
    opt_state = optax.tree_map_params(state.tx, lambda _, spec: spec, state.opt_state, params,
                                      transform_non_params=lambda _: PartitionSpec(), is_leaf=is_spec)
    data = self.shape["data"]
    model_state = jax.tree.map(
        lambda x: PartitionSpec("data") if np.ndim(x) and np.shape(x)[0] % data == 0 else PartitionSpec(),
        state.model_state)
    specs = state.replace(step=PartitionSpec(), params=params, opt_state=opt_state, model_state=model_state)
    return jax.tree.map(lambda spec: NamedSharding(self.mesh, spec), specs, is_leaf=is_spec)

  def init_state(self, make_state: Callable[[jax.Array], Any], key: jax.Array, param_axes: Callable | None = None):
    """`make_state(key)` (a `TrainState`) placed on the mesh. With `model=1` it is made on one device, then
    copied; otherwise `make_state` is jitted straight into its shards (it must be traceable)."""
    if self.shape["model"] == 1:
      state = make_state(key)
      return put(state, self.state_shardings(state, param_axes))
    shardings = self.state_shardings(jax.eval_shape(make_state, key), param_axes)
    return jax.jit(make_state, in_shardings=self.replicated, out_shardings=shardings)(np.asarray(key))

  def train_step(self, loss_fn, state, donate: bool = True):
    """`train_step(state, batch, rng)` jitted with `state`'s shardings in and out, the batch split over
    `data`, the RNG and metrics replicated."""
    state_shardings = jax.tree.map(lambda x: x.sharding, state)
    return jax.jit(functools.partial(train_step, loss_fn),
                   in_shardings=(state_shardings, self.batch_sharding, self.replicated),
                   out_shardings=(state_shardings, self.replicated), donate_argnums=(0,) if donate else ())


def put(tree, shardings):
  """`tree` placed with `shardings` (a matching tree). One process places device arrays directly; several
  build each global array from the value every process holds."""
  if jax.process_count() == 1:
    return jax.device_put(tree, shardings)

  def build(x, sharding):
    value = np.asarray(x)
    return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])
  return jax.tree.map(build, tree, shardings)


def data_parallel(num_devices: int | None = None):
  """`(shard_batch, replicate)` over a 1-D mesh of every device of every process: `shard_batch(global_batch)`
  places this process's rows on its devices as one global array; `replicate(tree)` places the same values
  everywhere. `num_devices` (one process only) uses the first that many devices."""
  layout = Layout.create(num_devices=num_devices)
  return layout.shard_batch, layout.replicate

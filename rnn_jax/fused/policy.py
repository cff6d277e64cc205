"""Every speed choice of the runner and its fast kernels, keyed by backend and shape.

| rule                               | CPU                                   | GPU, TPU          |
|------------------------------------|---------------------------------------|-------------------|
| `hoist_by_default`                 | H >= 512                              | always            |
| `fused_by_default`                 | every supported cell                  | the same          |
| `cudnn_pays`                       | (no cuDNN)                            | never yet         |
| `per_step_forward_pays`            | LSTM, unless one product pays         | never             |
| `one_recurrent_product_pays`       | B >= 128 and H < 512                  | always            |
| `transposed_recurrence_pays`       | H >= 1024                             | never             |
| `gates_overwrite_projections_pays` | LSTM; GRU from B*H = 16384            | the same          |

The CPU thresholds were measured on a 2-core Xeon, the GPU choices on one H200; each rule names
the section of experiments/benchmark/README.md that measured it ("Runner choices" says how to
re-measure them). Rules are read at trace time: to re-tune for another machine, replace one before
the first trace, e.g. `policy.transposed_recurrence_pays = lambda hidden, backend=None: False`.
"""

from __future__ import annotations

import jax

from rnn_jax.cells import base
from rnn_jax.cells.gru import GRU
from rnn_jax.cells.lstm import LSTM


def _cpu(backend: str | None) -> bool:
  return (backend or jax.default_backend()) == "cpu"


def hoist_by_default(hidden_size: int, backend: str | None = None) -> bool:
  """Hoist the input projection out of the loop (one `[T*B, I] x [I, G]` matmul). On a CPU with few
  cores the per-step projection overlaps `h W_h` on an idle core: hoisting paid only from H = 512
  (README "Results": 510 against 444 ms at B=128, H=256; 1540 against 1807 at H=1024)."""
  return not _cpu(backend) or hidden_size >= 512


def fused_by_default(cell: base.Cell, supported: bool, backend: str | None = None) -> bool:
  """Take the hand-written backward wherever it is `supported`: 1.02-1.7x autodiff's speed at every CPU
  shape measured ("Results"), 1.41x on the H200 at 16x256x100 ("GPU: NVIDIA H200")."""
  del cell, backend
  return supported


def cudnn_pays(batch: int, hidden: int, steps: int, backend: str | None = None) -> bool:
  """Route a plain LSTM to cuDNN: nowhere yet. On the H200 the fused scan's fwd+bwd took 0.5-0.93x
  the time of the cuDNN layer at B 16-256, H 512-1024, T=100 ("GPU: NVIDIA H200")."""
  del batch, hidden, steps, backend
  return False


def one_recurrent_product_pays(batch: int, hidden: int, backend: str | None = None) -> bool:
  """Compute `h W_h` as one product whose column blocks the gate math reads, rather than one product
  per gate. Per-gate buffers are what XLA:CPU vectorises ("What XLA does"), but from B=128 at H < 512
  one product and larger fusions were 1.03-1.37x faster. Accelerators always take one product."""
  return not _cpu(backend) or (batch >= 128 and hidden < 512)


def per_step_forward_pays(cell: base.Cell, batch: int, hidden: int, backend: str | None = None) -> bool:
  """An undifferentiated LSTM call where the runner does not hoist runs the projection inside each
  step: 109-111 against 137 ms hoisted at 32x256x1000 on CPU, level at B=128 ("Results"). The GRU
  and Elman keep the hoisted forward; accelerators always hoist."""
  return _cpu(backend) and isinstance(cell, LSTM) and not one_recurrent_product_pays(batch, hidden, backend)


def transposed_recurrence_pays(hidden: int, backend: str | None = None) -> bool:
  """Compute `h W_h` as `(W_h^T h^T)^T` in the forward and `dz W_h^T` as `(W_h dz^T)^T` in the backward:
  XLA:CPU's small-batch `[B, H] x [H, G]` kernel ran at 45 % of the ceiling at H=1024, the transposed
  product near it (fwd+bwd 1.13-1.15x at 32x1024x100; 0.89-0.98x at H=256; "What XLA does")."""
  return _cpu(backend) and hidden >= 1024


def gates_overwrite_projections_pays(cell: base.Cell, batch: int, hidden: int, backend: str | None = None) -> bool:
  """The differentiated forward writes each gate's activations over its projection `x W_x` in place
  rather than into a fresh, zero-filled stack: LSTM 1.01-1.06x at all CPU target shapes; the GRU
  1.02-1.06x from B*H = 16384 but 0.96-0.97x below ("Results"). The H200 figures were taken with
  this rule; it is not measured there without it."""
  del backend
  return isinstance(cell, LSTM) or (isinstance(cell, GRU) and batch * hidden >= 16384)

"""The runner's fast layers, behind `rnn_jax.scan.run`, which chooses among them with `policy`.

  layer               the fused layer: hoisted projection, hand-written VJP, remat in chunks (`run`)
  kernel              the protocol a cell family's kernel follows, its registry, the shared step ops
  lstm, gru, elman    the families' kernels; each registers itself for its cell class
  cudnn               the plain LSTM through cuDNN (CUDA GPUs)
  policy              every speed choice, keyed by backend and shape

A new cell with a fast path is one module beside these (its `forward` and `backward` steps and a
`kernel.register(MyCell, family)` line), imported below.
"""

from rnn_jax.fused import elman, gru, lstm  # each registers its family's kernel
from rnn_jax.fused.layer import remat_chunks, run, unsupported_reason

__all__ = ["run", "remat_chunks", "unsupported_reason"]

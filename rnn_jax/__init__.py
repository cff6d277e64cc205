"""rnn_jax: recurrent neural networks as pure JAX functions.

`cells` holds the pure cells and their registry, `scan` the one runner that
drives them over sequences, `nn` thin flax.linen wrappers over both.
"""

from rnn_jax import cells, scan
from rnn_jax.scan import init_stack, run, run_bidirectional, run_stack

__version__ = "0.1.0"
__all__ = ["cells", "scan", "run", "run_bidirectional", "run_stack", "init_stack"]

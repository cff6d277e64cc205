"""A large word-level LM in the spirit of Jozefowicz et al. (2016), "Exploring the limits of language modeling":
One Billion Word benchmark (lm1b), 2 layers of LSTMP with 8192 cells and a 1024-unit recurrent projection,
1024-wide embeddings, a full softmax over 793,472 words. 1,776,884,608 parameters (the paper's LSTM-8192-1024
has 1.8 B and reached test perplexity 30.6 with a sampled softmax, on 32 GPUs); no figure of this config has
been measured yet.

  python -m experiments.language_modeling.main --config=experiments/language_modeling/configs/lm1b_large.py \
    --config.data.download=True --workdir=runs/lm1b_large   # on 4, 8, ... devices: mesh data=-1 x model=4

It needs a mesh (`config.mesh`, docs/training.md) whose model axis splits the state over several devices:
the embedding and softmax on the vocabulary axis, the LSTM kernels on the gate axis (4H), the projection on
the cell axis (H). Per device, in float32:
  - train state (params 4 B + gradients 4 B + Adam's two moments 8 B = 16 B per parameter), whatever the data
    axis: 26.5 GiB at model=1, 13.2 GiB at model=2, 6.6 GiB at model=4, 3.3 GiB at model=8;
  - logits (B x T x V x 4 B = 15.1 GiB for the global batch of 256 x 20) divided over all data x model devices,
    about twice that again for their gradient: e.g. 1.9 GiB each on 8 devices, 0.5 GiB on 32.
By these figures 8 devices of 16 GiB should hold a 2 x 4 mesh (the default model=4) with room for the LSTM's
activations, and 80 GiB devices even model=1 (`--config.mesh.model=1`); none of this has been run at full size.
TFDS downloads and prepares lm1b once (`--config.data.download=True`); its training text, about 0.8 billion
words, is then read into host memory.
"""

from experiments.language_modeling.configs.base import base_config


def get_config():
  c = base_config()
  c.data.path = "tfds:lm1b"
  c.data.level = "word"
  c.data.max_vocab = 793472        # the paper's 793,471 words rounded up to divide over model axes up to 128
  c.data.batch_size = 256          # global batch (streams), split over the data axis
  c.data.eval_batch_size = 64
  c.data.bptt = 20                 # the paper's unroll
  c.model.cell = "lstmp"
  c.model.hidden_size = 8192       # cells per layer
  c.model.proj_size = 1024         # recurrent projection
  c.model.embed_size = 1024
  c.model.num_layers = 2
  c.model.dropout = 0.25           # the paper's dropout for its largest models
  c.mesh.model = 4                 # devices each matrix is split over (see the docstring for the memory)
  c.num_epochs = 1
  c.log_every = 100
  c.eval_every = 5000
  c.checkpoint_every = 1000
  c.eval_splits = ("valid", "test")
  c.optimizer.name = "adam"
  c.optimizer.learning_rate = 1e-3
  c.optimizer.clip_norm = 1.0
  c.sample.prime = "the"
  c.sample.length = 50
  c.sample.temperature = 1.0
  return c

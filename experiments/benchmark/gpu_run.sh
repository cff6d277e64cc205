#!/usr/bin/env bash
# The GPU measurement as one prepared run, for a lent GPU machine (or any CUDA host):
#   bash experiments/benchmark/gpu_run.sh OUT_DIR
# Runs from the repository root without installing it (PYTHONPATH=.). Packages the host lacks can
# come as wheels in .whl/ (git-ignored; e.g. `pip download --no-deps -d .whl ml_collections tensorboardX`),
# installed to /tmp/site first. Each shape is its own harness process, so a run cut short by a time
# limit keeps the shapes it finished: OUT_DIR gets gpu_env.txt, gpu.log and gpu.jsonl.
# SHAPES, DTYPES and ROUNDS override the defaults below (e.g. SHAPES=8x32x10 for a dry run on CPU).
set -uo pipefail
out="${1:-runs/benchmark/gpu}"
mkdir -p "$out"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH=".:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 || echo "no nvidia-smi"
  python3 -c "import jax, flax; print('jax', jax.__version__, 'flax', flax.__version__, jax.devices())"
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'cudnn', torch.backends.cudnn.version(), torch.cuda.is_available())" 2>&1
} | tee "$out/gpu_env.txt"

# The GPU target: fwd+bwd within 1.5x of cuDNN at H >= 512, B >= 64; forward as fast as the fastest.
# --backward=auto,autodiff shows whether the hand-written backward pays on this backend too.
for shape in ${SHAPES:-64x512x100 128x512x100 64x1024x100 128x1024x100}; do
  python3 -m experiments.benchmark.main --cells=lstm,gru --modes=fwdbwd,fwd --shapes="$shape" \
    --dtype="${DTYPES:-float32,bfloat16}" --backward=auto,autodiff --compare=flax,torch,cudnn \
    --rounds="${ROUNDS:-5}" --min_round_s=0.1 --output="$out/gpu.jsonl" 2>&1 \
    | grep -v -e '^[IW][0-9]\{4\} ' | tee -a "$out/gpu.log"
done

#!/usr/bin/env bash
# The GPU measurement as one prepared run, for a CUDA host:
#   bash experiments/benchmark/gpu_run.sh OUT_DIR [STAGES]
# Runs from the repository root without installing it (PYTHONPATH=.). Packages the host lacks can
# come as wheels in .whl/ (git-ignored; e.g. `pip download --no-deps -d .whl ml_collections tensorboardX`),
# installed to /tmp/site first. Stages run in order, each under its own time limit (seconds, after the
# colon), logging to OUT_DIR/run.log and appending rows to OUT_DIR/*.jsonl point by point, so a stage cut short keeps
# what it finished. STAGES (default: all, in the order below) picks some, e.g. "tests grid_target".
# ROUNDS and MIN_ROUND_S override the timing defaults; SHAPES_<STAGE> a stage's shapes (e.g. a dry run
# on CPU with tiny shapes).
set -uo pipefail
out="${1:-runs/benchmark/gpu}"
stages="${2:-env tests grid_target train_steps tuning profile grid_rest}"
mkdir -p "$out"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH=".:${PYTHONPATH:-}" PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
timing="--rounds=${ROUNDS:-3} --min_round_s=${MIN_ROUND_S:-0.05}"
bench() { python3 -m experiments.benchmark.main "$@" 2>&1 | grep --line-buffered -v -e '^[IW][0-9]\{4\} '; }

# The issue's grid: B in {16, 64, 256}, H in {256, 512, 1024}, T in {100, 1000}; the target shapes
# (fwd+bwd within 1.5x of cuDNN at H >= 512, B >= 64) and the small batches first.
target="64x512x100,256x512x100,64x1024x100,256x1024x100,16x256x100,16x1024x100"
rest="16x512x100,64x256x100,256x256x100,64x512x1000,16x256x1000,256x1024x1000,64x1024x1000,16x1024x1000,\
256x512x1000,16x512x1000,64x256x1000,256x256x1000"
grid=(--cells=lstm,gru --modes=fwdbwd,fwd --dtype=float32,bfloat16 --backward=auto,cudnn --compare=flax,torch,cudnn)

stage() {  # stage NAME LIMIT_S: runs stage_NAME under that limit, logging to OUT/run.log
  local name=$1 limit=$2
  echo "=== $name (limit ${limit}s) $(date -u +%T)"
  timeout --kill-after=5 "$limit" bash -c "$(declare -f bench "stage_$name"); stage_$name" 2>&1 | tee -a "$out/run.log"
  echo "=== $name ended $(date -u +%T)"
}
export out timing target rest TESTS SHAPES_GRID_TARGET SHAPES_TRAIN_STEPS SHAPES_TUNING SHAPES_PROFILE SHAPES_GRID_REST
export grid_flags="${grid[*]}"
stage_env() {
  date -u; uptime
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv 2>&1 || echo "no nvidia-smi"
  python3 -c "import jax, flax; print('jax', jax.__version__, 'flax', flax.__version__, jax.devices())"
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', \
torch.backends.cudnn.version(), torch.cuda.is_available(), 'cudnn.allow_tf32', torch.backends.cudnn.allow_tf32)" 2>&1
}
stage_tests() { python3 -m pytest -q -p no:cacheprovider ${TESTS:-tests/test_cudnn.py} 2>&1 | tail -15; }
stage_grid_target() { bench $grid_flags --shapes="${SHAPES_GRID_TARGET:-$target}" $timing --output="$out/grid.jsonl"; }
stage_train_steps() {
  bench --train_steps=language_modeling,language_modeling/zaremba_medium,handwriting/recognition,handwriting/generation,translation \
    --shapes="${SHAPES_TRAIN_STEPS:-32x0x64,256x0x64}" $timing --output="$out/train_steps.jsonl"
}
stage_tuning() {  # the runner's choices on this backend: hand-written backward or autodiff, unroll
  bench --cells=lstm,gru --modes=fwdbwd,fwd --shapes="${SHAPES_TUNING:-16x256x100,64x512x100,256x1024x100}" \
    --backward=fused,autodiff --unroll=1,4 $timing --output="$out/tuning.jsonl"
}
stage_profile() {
  python3 -m experiments.benchmark.profile --cells=lstm,gru --modes=fwdbwd,fwd --shapes="${SHAPES_PROFILE:-16x256x100,16x1024x100}" \
    --backward=auto,cudnn --compare=flax --output="$out/profile.jsonl" 2>&1 | grep --line-buffered -v -e '^[IW][0-9]\{4\} '
}
stage_grid_rest() { bench $grid_flags --shapes="${SHAPES_GRID_REST:-$rest}" $timing --output="$out/grid.jsonl"; }
export -f bench

declare -A limits=([env]=20 [tests]=60 [grid_target]=190 [train_steps]=70 [tuning]=55 [profile]=40 [grid_rest]=${REST_S:-140})
for name in $stages; do
  stage "$name" "${limits[$name]}"
done

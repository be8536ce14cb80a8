#!/usr/bin/env bash
# GPU efficiency check: train MCSAM and R2Gen at paper size for a fixed number of steps and report
# samples/s, step time, peak memory and retrieval overhead into leaderboards/gpu/.
#
#   benchmarks/gpu_check.sh                 # on a CUDA machine: paper size, bf16 autocast, 50 steps each
#   benchmarks/gpu_check.sh --steps 100     # more steps
#   benchmarks/gpu_check.sh --cpu-smoke     # tiny sizes on CPU, 2 steps, report into a temp folder (CI)
#
# Paper size: each recipe's own settings (MCSAM: ResNet-50, R2Gen: ResNet-101; d_model 512, 3+3 layers;
# MCSAM's 2048-slot memory, top-32), 224 px images, batch 16, bf16 autocast (train.amp), on the synthetic
# dataset (generated once into $RRGBENCH_CACHE; no data needed). One epoch capped at --steps steps, a
# 16-study validation split and a 32-study test split, so decoding and scoring stay short. The figures
# come from each run's results.json (efficiency section, see rrgbench/run/efficiency.py) and are summarised
# by benchmarks/gpu_report.py into OUT/efficiency.md and OUT/efficiency.json.
# Then the paper-size table of every recipe on the same device (benchmarks/test_bench_paper_size.py: one
# training step with its achieved TFLOP/s, one beam-3 decode of 16 studies; bf16 autocast on CUDA) goes to
# OUT/paper_size.md (pytest-benchmark JSON: OUT/paper_size.json); in --cpu-smoke mode at the tiny size.
#
# Options: --cpu-smoke | --steps N | --models "mcsam r2gen" | --runs DIR | --out DIR | --dry-run
# Environment: PYTHON (default: python), RRGBENCH_CACHE (synthetic data cache).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python}
SMOKE=0 DRY=0 STEPS="" MODELS="mcsam r2gen" RUNS="" OUT=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --cpu-smoke) SMOKE=1 ;;
    --steps) STEPS=$2; shift ;;
    --models) MODELS=$2; shift ;;
    --runs) RUNS=$2; shift ;;
    --out) OUT=$2; shift ;;
    --dry-run) DRY=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

export HF_HUB_OFFLINE=1 RRGBENCH_DISABLE_PLUGIN_AUTOLOAD=${RRGBENCH_DISABLE_PLUGIN_AUTOLOAD:-1}
if [[ $SMOKE == 1 ]]; then
  STEPS=${STEPS:-2} DEVICE=cpu BATCH=4 N_VAL=4 N_TEST=4 BENCH_SIZE=tiny
  if [[ -z $RUNS || -z $OUT || -z ${RRGBENCH_CACHE:-} ]]; then TMP=$(mktemp -d -t rrgbench-gpu-smoke-XXXXXX); fi
  RUNS=${RUNS:-$TMP/runs} OUT=${OUT:-$TMP/report}
  export RRGBENCH_CACHE=${RRGBENCH_CACHE:-$TMP/cache}
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # toy models: one thread is faster on a shared machine
  # shrink everything (the recipe's own architecture is kept, only smaller)
  COMMON=(--set dataset.image_size=64 --set data.image_size=64 --set data.train_resize=72 --set model.d_model=32
          --set encoder.backbone=resnet18 --set decoder.layers=1 --set decoder.encoder_layers=1 --set decoder.heads=2
          --set decoder.d_ff=64 --set data.max_len=20)
  declare -A EXTRA=([mcsam]="--set memory.size=32 --set memory.topk=4 --set memory.heads=2 --set decoder.n_prompts=2"
                    [r2gen]="--set decoder.rm_heads=2")
else
  STEPS=${STEPS:-50} DEVICE=cuda BATCH=16 N_VAL=16 N_TEST=32 BENCH_SIZE=paper
  RUNS=${RUNS:-runs/gpu-check} OUT=${OUT:-leaderboards/gpu}
  COMMON=(--set dataset.image_size=224 --set data.image_size=224 --set train.amp=true)
  declare -A EXTRA=()
fi

status=0
for model in $MODELS; do
  # shellcheck disable=SC2206
  extra=(${EXTRA[$model]:-})
  cmd=("$PYTHON" -m rrgbench run --model "$model" --dataset synthetic --profile paper --device "$DEVICE"
       --out "$RUNS" --no-progress --skip meteor --epochs 1
       --set "train.max_steps_per_epoch=$STEPS" --set "data.batch_size=$BATCH" --set "data.eval_batch_size=$BATCH"
       --set "dataset.n_train=$((STEPS * BATCH))" --set "dataset.n_val=$N_VAL" --set "dataset.n_test=$N_TEST"
       "${COMMON[@]}" "${extra[@]}")
  echo "+ ${cmd[*]}"
  if [[ $DRY == 0 ]]; then
    "${cmd[@]}" || { echo "gpu_check.sh: $model failed" >&2; status=1; }
  fi
done
if [[ $DRY == 0 ]]; then
  "$PYTHON" benchmarks/gpu_report.py "$RUNS" "$OUT"
  echo "report: $OUT/efficiency.md"
fi

bench=(env RRGBENCH_BENCH_SIZE="$BENCH_SIZE" "$PYTHON" -m pytest benchmarks/test_bench_paper_size.py -q
       -p no:cacheprovider --benchmark-only --benchmark-json "$OUT/paper_size.json")
table=("$PYTHON" benchmarks/paper_size_table.py "$OUT/paper_size.json" --out "$OUT/paper_size.md")
echo "+ ${bench[*]}"
echo "+ ${table[*]}"
if [[ $DRY == 0 ]]; then
  mkdir -p "$OUT"
  if "${bench[@]}" && "${table[@]}"; then
    echo "report: $OUT/paper_size.md"
  else
    echo "gpu_check.sh: the paper-size benchmark failed" >&2; status=1
  fi
fi
exit $status

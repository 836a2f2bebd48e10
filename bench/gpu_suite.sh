#!/usr/bin/env bash
# Every measurement issue #6 asks for on a GPU, in stages that each fit one 10-minute call of a lent GPU machine.
#
#   bash bench/gpu_suite.sh prepare      # here, once: wheels the GPU image lacks (.whl/) and the data (.data/)
#   bash bench/gpu_suite.sh STAGE        # there, with .whl and .data carried; STAGE is one of
#                                        #   speedrun speedrun95 throughput resnet96 e2e
#   SMOKE=1 bash bench/gpu_suite.sh all  # any machine: every stage, tiny and on the CPU (checks the script itself)
#   PYTHON=/path/to/python bash bench/gpu_suite.sh STAGE   # another interpreter than python3 from PATH
#
# Each stage prints JSON lines and keeps them in $OUT/<stage>.jsonl (OUT defaults to bench-out/), ready for
# bench/RESULTS.md.  Ratios come from one process per stage, never from comparing stages.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-.data/fashion-mnist}
OUT=${OUT:-bench-out}
SMOKE=${SMOKE:-0}
PYTHON=${PYTHON:-python3}  # the interpreter every stage runs (a test passes its own, sys.executable)
mkdir -p "$OUT"

prepare() {
  # pydantic and its compiled core are not in the GPU image (see the device README); everything else is.
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    "pydantic==$("$PYTHON" -c 'import pydantic; print(pydantic.VERSION)')" \
    "pydantic_core==$("$PYTHON" -c 'import pydantic_core; print(pydantic_core.__version__)')" \
    annotated-types typing-inspection
  mkdir -p "$DATA" && cp -n ../shared/data/fashion-mnist/*.gz "$DATA"/
  echo "carry .whl and .data; first command there: bash bench/gpu_suite.sh STAGE"
}

use_wheels() {
  if [ -d .whl ] && ! "$PYTHON" -c 'import pydantic' 2>/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
  fi
  export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
}

record() {  # record STAGE COMMAND...: run it, keep its JSON lines
  local stage=$1; shift
  echo "== $stage: $*" >&2
  "$@" | tee "$OUT/$stage.jsonl"
}

speedrun_args() {
  if [ "$SMOKE" = 1 ]; then
    echo --device cpu --seeds 1 --subset 500 --set model.name=speedrun-net-xs --set train.epochs=1
  else
    echo --seeds 3
  fi
}

throughput_args() {
  if [ "$SMOKE" = 1 ]; then
    echo --device cpu --examples 512 --epochs 1 --num-workers 0
  else
    echo --device cuda --examples 60000 --num-workers 4 --trainlab-set train.compile=true
  fi
}

speedrun() {
  record speedrun "$PYTHON" bench/speedrun.py $(speedrun_args) --set data.root="$DATA" --out "$OUT/runs"
}

speedrun95() {
  record speedrun95 "$PYTHON" bench/speedrun.py -c configs/fashion-mnist-95.yaml $(speedrun_args) \
    --set data.root="$DATA" --out "$OUT/runs"
}

throughput() {  # d2l LeNet and the 28x28 ResNet-18: d2l vs Lightning vs hand-written vs trainlab
  local epochs=3 models=lenet,resnet18-28
  [ "$SMOKE" = 1 ] && epochs=1 models=lenet
  record throughput "$PYTHON" bench/throughput.py $(throughput_args) --epochs $epochs --models $models \
    --data-root "$DATA"
}

resnet96() {  # d2l's ResNet-18 recipe at 96x96 (one epoch: its d2l baseline runs about 5 s per 60k images)
  [ "$SMOKE" = 1 ] && { echo "resnet96: skipped in SMOKE mode (96x96 ResNet-18 on a CPU)" >&2; return; }
  record resnet96 "$PYTHON" bench/throughput.py $(throughput_args) --epochs 1 --models resnet18-96 \
    --data-root "$DATA"
}

e2e() {  # the whole `trainlab train` command, process start to exit, twice: cold and warm compile cache
  local args=(-c configs/fashion-mnist-speedrun.yaml --set data.root="$DATA" --out "$OUT/runs")
  [ "$SMOKE" = 1 ] && args=(--data digits --model speedrun-net-xs --epochs 1 --device cpu --out "$OUT/runs")
  export TORCHINDUCTOR_CACHE_DIR=$OUT/compile-cache
  : >"$OUT/e2e.jsonl"
  for attempt in cold warm; do
    local started ended
    started=$(date +%s.%N)
    "$PYTHON" -m trainlab train "${args[@]}" --name "e2e-$attempt" --set callbacks.progress.style=plain >&2
    ended=$(date +%s.%N)
    "$PYTHON" - "$OUT/runs/e2e-$attempt/summary.json" "$attempt" "$started" "$ended" <<'EOF' | tee -a "$OUT/e2e.jsonl"
import json, sys
summary = json.load(open(sys.argv[1]))
fast = summary.get("fastpath", {})
print(json.dumps({"bench": "e2e", "cache": sys.argv[2], "command_seconds": round(float(sys.argv[4]) - float(sys.argv[3]), 2),
                  "train_seconds": summary.get("train_seconds"), "wall_seconds": summary.get("wall_seconds"),
                  "compile_seconds": fast.get("compile_seconds"), "compile_cache": fast.get("compile_cache"),
                  "test_acc": summary.get("test", {}).get("test_acc"), "device": summary.get("device")}))
EOF
  done
}

stage=${1:?"usage: bash bench/gpu_suite.sh prepare|speedrun|speedrun95|throughput|resnet96|e2e|all"}
case $stage in
  prepare) prepare ;;
  speedrun | speedrun95 | throughput | resnet96 | e2e) use_wheels; $stage ;;
  all) use_wheels; speedrun; speedrun95; throughput; resnet96; e2e ;;
  *) echo "unknown stage '$stage'" >&2; exit 2 ;;
esac

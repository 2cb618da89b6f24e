#!/usr/bin/env bash
# The GPU check of the training chapter, on a CUDA machine without internet access:
#   1. notebooks/07_training.ipynb executed in full mode (DDPM_QUICK=0) on the offline digits
#      (DDPM_DATA=offline, no download), DDPM_STEPS steps (default 4000);
#   2. benchmarks/gpu_check.py: speed of each precision setting, resumption, sampling cost.
# Results go to $OUT (default /tmp/gpu_out): the executed notebook, its run's metrics, last
# preview and EMA weights, gpu_check.json and a log.
#
#   OUT=/tmp/gpu_out bash benchmarks/gpu_run.sh
#
# Packages the machine lacks (nbclient, ipykernel and their dependencies) can be put
# in .whl/ as wheels; they are installed into /tmp/site, nowhere else.
set -u
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
RUN_DIR=/tmp/gpu_run
rm -rf "$RUN_DIR"

{
nvidia-smi -L
python3 -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.get_device_name())"

echo "== 1. the chapter, full mode, offline digits, ${DDPM_STEPS:-4000} steps"
start=$(date +%s)
DDPM_QUICK=0 DDPM_DATA=offline DDPM_STEPS=${DDPM_STEPS:-4000} DDPM_RUN_DIR=$RUN_DIR \
timeout "${NOTEBOOK_TIMEOUT:-300}" python3 - "$OUT/07_training_gpu.ipynb" <<'EOF'
import signal, sys
import nbformat
from nbclient import NotebookClient

def stop(signum, frame):
    raise KeyboardInterrupt("timeout")

signal.signal(signal.SIGTERM, stop)
nb = nbformat.read("notebooks/07_training.ipynb", as_version=4)
try:
    NotebookClient(nb, timeout=1200, kernel_name="python3", resources={"metadata": {"path": "notebooks"}}).execute()
    print("notebook: every cell ran")
finally:
    nbformat.write(nb, sys.argv[1])
EOF
echo "notebook exit status $? after $(( $(date +%s) - start )) s"
cp "$RUN_DIR/metrics.jsonl" "$RUN_DIR/config.json" "$OUT/" 2>/dev/null
last_preview=$(ls "$RUN_DIR"/samples/*.png 2>/dev/null | tail -1)
[ -n "$last_preview" ] && cp "$last_preview" "$OUT/last_preview.png"
last_ckpt=$(ls "$RUN_DIR"/checkpoints/*.pt 2>/dev/null | tail -1)
[ -n "$last_ckpt" ] && python3 -c "
import sys; from ddpm_core.weights import export_checkpoint
export_checkpoint(sys.argv[1], sys.argv[2], metadata={'machine': 'GPU check (benchmarks/gpu_run.sh)'})" \
    "$last_ckpt" "$OUT/gpu_run_ema.safetensors"

echo "== 2. benchmarks/gpu_check.py"
timeout "${CHECK_TIMEOUT:-240}" python3 benchmarks/gpu_check.py --out "$OUT/gpu_check.json" ${CHECK_ARGS:-}
echo "gpu_check exit status $?"
} 2>&1 | tee "$OUT/log.txt"

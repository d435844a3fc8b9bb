#!/usr/bin/env bash
# One-shot GPU measurement of timm_ext.batch (well under 10 minutes on one H100):
# the batched transforms at 32 / 224 px, batch 128 / 256, grouped evaluation, CPU one core vs CUDA,
# the CUDA-vs-CPU test, and `timm train` with --mix-device workers / cpu / auto.
# Run from the repository root:  bash benchmarks/gpu_batch_mixing.sh  (output: stdout, Markdown tables)
set -euo pipefail
export NO_ALBUMENTATIONS_UPDATE=1 MPLBACKEND=Agg PYTHONPATH="${PWD}${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PY" -c "import torch, timm; print('torch', torch.__version__, 'timm', timm.__version__, 'cuda', torch.version.cuda)"
"$PY" -m pytest tests/test_batch_mixing.py -q -k cuda
"$PY" benchmarks/batch_mixing.py --repeats 3 --draws 256 --strategies group --train-images 4096 --train-epochs 2 --workers 4

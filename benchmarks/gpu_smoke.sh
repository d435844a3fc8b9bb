#!/usr/bin/env bash
# GPU smoke run (well under 10 minutes on one H100): `timm train` of ResNet-50 with IPMix at 224 px,
# AMP (bfloat16), channels-last and torch.compile, a few hundred optimizer steps on a generated
# ImageNet-like folder (JPEGs of random sizes, 10 classes), printing images/s per epoch and the mean
# over the epochs after the first (compilation and worker start-up fall in the first); then
# `robust-eval corruptions` on a generated ImageNet-C-shaped folder against a bare model(x) loop.
#
#   bash benchmarks/gpu_smoke.sh            # the GPU run: 2,560 images, batch 128, 15 epochs = 300 steps
#   bash benchmarks/gpu_smoke.sh --dry      # CPU-sized check of the same script (seconds to minutes)
#
# Environment: PYTHON (default python), WORK (scratch folder, default a fresh temporary one).
set -euo pipefail
export NO_ALBUMENTATIONS_UPDATE=1 MPLBACKEND=Agg PYTHONPATH="${PWD}${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python}"
WORK="${WORK:-$(mktemp -d)}"
if [[ "${1:-}" == "--dry" ]]; then
  # CPU: the same flags on timm's test_resnet at 32 px (torch.compile with the eager backend: no C++ build)
  IMAGES=64; SIDE=40; EPOCHS=2
  TRAIN=(--model test_resnet --img-size 32 -b 16 --workers 2 --device cpu --torchcompile --torchcompile-backend eager)
else
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  IMAGES=2560; SIDE=0; EPOCHS=15
  TRAIN=(--model resnet50 --img-size 224 -b 128 --workers "$(nproc)" --device cuda --torchcompile)
fi
"$PY" -c "import torch, timm; print('torch', torch.__version__, 'timm', timm.__version__, 'cuda', torch.version.cuda)"

# an ImageNet-like folder: train/ and val/, 10 classes, JPEG q90, sides 256..500 px (SIDE > 0: fixed)
"$PY" - "$WORK/data" "$IMAGES" "$SIDE" <<'PYEOF'
import sys
from pathlib import Path

import numpy as np
from PIL import Image

root, count, side = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
for split, n in (("train", count), ("val", max(count // 10, 20))):
    for i in range(n):
        h, w = (side, side) if side else rng.integers(256, 501, size=2)
        base = rng.integers(0, 256, size=(1, 1, 3))
        img = np.clip(base + rng.normal(0, 40, size=(h, w, 3)), 0, 255).astype(np.uint8)
        folder = root / split / f"class{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{i}.jpg", quality=90)
print(f"generated {count} training images in {root}")
PYEOF

"$PY" -m timm_ext.cli train --dataset imagefolder --data-dir "$WORK/data" --aug ipmix --epochs "$EPOCHS" \
  --amp --amp-dtype bfloat16 --channels-last --lr 0.1 --no-progress --output "$WORK/run" "${TRAIN[@]}"

"$PY" - "$WORK/run/metrics.csv" <<'PYEOF'
import csv
import sys

rows = list(csv.DictReader(open(sys.argv[1])))
rates = [float(r["train_images_per_s"]) for r in rows]
steady = rates[1:] or rates
print(f"timm train smoke: {len(rows)} epochs, first epoch {rates[0]:.0f} img/s, "
      f"then mean {sum(steady) / len(steady):.0f} img/s (training images incl. IPMix, AMP, channels-last, compile)")
PYEOF

# `robust-eval corruptions` on a small generated ImageNet-C-shaped folder (2 corruptions x 5 severities,
# JPEG q85, 224 px) against a bare model(x) loop on the same device (benchmarks/eval_throughput.py)
if [[ "${1:-}" == "--dry" ]]; then
  "$PY" benchmarks/eval_throughput.py --smoke --no-cuda
else
  "$PY" benchmarks/eval_throughput.py --images 200 --batch-size 128 --workers "$(nproc)" --amp bf16 \
    --channels-last --decode auto --repeats 1
fi

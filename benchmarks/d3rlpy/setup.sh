#!/usr/bin/env bash
# Create the separate virtual environment in which benchmarks/d3rlpy/update_rate.py and
# benchmarks/d3rlpy/end_to_end.py run d3rlpy's CalQL (PyTorch), for benchmarks/compare_d3rlpy.py
# and benchmarks/end_to_end.py. Idempotent: rerunning it reuses the environment and only
# installs what is missing.
#
#     bash benchmarks/d3rlpy/setup.sh
#
# Location: $CALQL_D3RLPY_VENV, by default ~/.cache/calql-bench/d3rlpy-venv.
# Python: $PYTHON (default python3; 3.9+).
set -euo pipefail

VENV="${CALQL_D3RLPY_VENV:-$HOME/.cache/calql-bench/d3rlpy-venv}"
PYTHON="${PYTHON:-python3}"

# torch 2.13.0 exactly: on the development machines this version is a local CPU wheel
# (pip's find-links); an unpinned `torch` would download several GB of CUDA wheels.
TORCH_VERSION="2.13.0"
# d3rlpy 2.8.1: the newest release (2025-03). CalQL exists since 2.3.0; 2.8.1 requires
# only torch>=2.5.0, so it accepts the pinned torch, and its CalQL has the Lagrange
# multiplier (alpha_threshold) and max backup options of the paper's settings. Pinned so
# that measured numbers stay comparable between runs.
D3RLPY_VERSION="2.8.1"

if [ ! -x "$VENV/bin/python" ]; then
    echo "creating $VENV"
    mkdir -p "$(dirname "$VENV")"
    "$PYTHON" -m venv "$VENV"
fi

installed() {
    "$VENV/bin/python" - "$1" "$2" <<'EOF'
import sys
from importlib.metadata import PackageNotFoundError, version
try:
    sys.exit(0 if version(sys.argv[1]).split("+")[0] == sys.argv[2] else 1)
except PackageNotFoundError:
    sys.exit(1)
EOF
}

if installed torch "$TORCH_VERSION" && installed d3rlpy "$D3RLPY_VERSION"; then
    echo "d3rlpy $D3RLPY_VERSION and torch $TORCH_VERSION already installed in $VENV"
else
    # torch first and on its own, so that d3rlpy's `torch>=2.5.0` is already satisfied
    # and pip never resolves a different torch.
    "$VENV/bin/python" -m pip install --disable-pip-version-check "torch==$TORCH_VERSION"
    "$VENV/bin/python" -m pip install --disable-pip-version-check "torch==$TORCH_VERSION" "d3rlpy==$D3RLPY_VERSION"
fi

# The environment packages calql runs its tasks with (pyproject.toml), so that end_to_end.py
# steps calql's own PointMaze code with the same versions in both jobs. d3rlpy 2.8.1 declares
# gymnasium==1.0.0; gymnasium-robotics 1.4.2 needs gymnasium>=1.2, so pip replaces it and
# reports the conflict. d3rlpy's fit / fit_online run with gymnasium 1.4.0 (the five-value
# step API is the same), and update_rate.py does not use gymnasium at all.
GYMNASIUM_VERSION="1.4.0"
ROBOTICS_VERSION="1.4.2"
MUJOCO_VERSION="3.11.0"
if installed gymnasium "$GYMNASIUM_VERSION" && installed gymnasium-robotics "$ROBOTICS_VERSION" \
    && installed mujoco "$MUJOCO_VERSION"; then
    echo "gymnasium $GYMNASIUM_VERSION, gymnasium-robotics $ROBOTICS_VERSION, mujoco $MUJOCO_VERSION already installed"
else
    "$VENV/bin/python" -m pip install --disable-pip-version-check "gymnasium==$GYMNASIUM_VERSION" \
        "gymnasium-robotics==$ROBOTICS_VERSION" "mujoco==$MUJOCO_VERSION"
fi

"$VENV/bin/python" -c "import torch, d3rlpy; from d3rlpy.algos import CalQLConfig; \
print(f'ok: torch {torch.__version__}, d3rlpy {d3rlpy.__version__} in $VENV')"

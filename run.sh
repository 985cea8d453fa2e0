#!/usr/bin/env bash
# offline_moe entry script.
#   ./run.sh            the embedded default benchmark (records, ingests, trains, evaluates, reports)
#   ./run.sh test [..]  the test suite (extra arguments go to pytest)
#   ./run.sh lint       ruff check + format check
#   ./run.sh device [..] the accelerator check (python -m offline_moe.bench device [--minutes=8])
# Creates .venv on first use and (re)installs the package into it whenever pyproject.toml changes.
# On a host where `nvidia-smi` reports a GPU (or with OFFLINE_MOE_GPU=1) it also installs the
# `gpu` extra (JAX with CUDA 12); OFFLINE_MOE_GPU=0 forces the CPU-only install.
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3}
VENV=.venv
STAMP="$VENV/.offline_moe-installed"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[run.sh] creating $VENV with $($PY --version 2>&1)"
  "$PY" -m venv "$VENV"
fi
gpu=${OFFLINE_MOE_GPU:-}
if [ -z "$gpu" ]; then
  gpu=0
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
    gpu=1
  fi
fi
extras=test
[ "$gpu" = 1 ] && extras=test,gpu
want="$(sha256sum pyproject.toml | cut -d' ' -f1) $extras"
have=$(cat "$STAMP" 2>/dev/null || true)
if [ "$want" != "$have" ]; then
  echo "[run.sh] installing offline_moe (editable, extras: $extras) into $VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e ".[$extras]"
  echo "$want" > "$STAMP"
fi

export PYTHONUNBUFFERED=1
# TF (ingest side only) should stay quiet and never grab an accelerator.
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}

cmd=${1:-bench}
case "$cmd" in
  test)
    shift
    exec "$VENV/bin/python" -m pytest -n "${PYTEST_WORKERS:-2}" --dist worksteal "$@"
    ;;
  lint)
    "$VENV/bin/ruff" check .
    exec "$VENV/bin/ruff" format --check .
    ;;
  device)
    shift
    exec "$VENV/bin/python" -m offline_moe.bench device "$@"
    ;;
  bench)
    [ $# -gt 0 ] && shift
    exec "$VENV/bin/python" -m offline_moe.default_benchmark "$@"
    ;;
  *)
    echo "usage: ./run.sh [test [pytest args] | lint | device [--minutes=N]]" >&2
    exit 2
    ;;
esac

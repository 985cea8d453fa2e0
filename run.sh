#!/usr/bin/env bash
# offline_moe entry script.
#   ./run.sh [..]       the default benchmark: a MinAtar mini-grid (--atari: the Atari pipeline check)
#   ./run.sh test [..]  the test suite (extra arguments go to pytest)
#   ./run.sh lint       ruff check + format check
#   ./run.sh device [..] the accelerator check (python -m offline_moe.bench device [--minutes=6])
#
# Installs on first use, and again whenever pyproject.toml changes:
# * usually into .venv (created here), editable, with the `test` extra (TensorFlow included);
# * on a host whose Python already has a JAX that sees a GPU (a prepared GPU machine), that JAX
#   is never replaced: the host's Python is used as it is, and only the packages it lacks are
#   installed, into .venv-gpu (no TensorFlow: training, recording to a cache and the benchmarks
#   need none). Elsewhere, where nvidia-smi reports a GPU (or OFFLINE_MOE_GPU=1), the `gpu`
#   extra (JAX with CUDA 12) goes into .venv; OFFLINE_MOE_GPU=0 forces the CPU-only install.
# OFFLINE_MOE_WHEELS=DIR installs from a folder of wheels alone (pip --no-index), for machines
# without internet; docs/gpu.md says how to fill it.
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3}
cmd=${1:-bench}
wheels=${OFFLINE_MOE_WHEELS:-}
pip_from=()
[ -n "$wheels" ] && pip_from=(--no-index --find-links "$wheels")

gpu=${OFFLINE_MOE_GPU:-}
if [ -z "$gpu" ]; then
  gpu=0
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
    gpu=1
  fi
fi
host_jax_gpu=0
if [ "${OFFLINE_MOE_GPU:-}" != 0 ] && "$PY" -c 'import sys, jax; sys.exit(jax.default_backend() == "cpu")' \
    >/dev/null 2>&1; then
  host_jax_gpu=1
  gpu=1
fi

if [ "$host_jax_gpu" = 1 ]; then
  # The host's Python and its GPU JAX, plus what it lacks (pyproject's dependencies, no extras)
  # in .venv-gpu; nothing it has is reinstalled, so its JAX, numpy and CUDA stay as they are.
  SITE=.venv-gpu
  STAMP="$SITE/.offline_moe-installed"
  want="$(sha256sum pyproject.toml | cut -d' ' -f1) host-gpu"
  if [ "$want" != "$(cat "$STAMP" 2>/dev/null || true)" ]; then
    missing=$("$PY" - <<'EOF'
import importlib.metadata as md, re, tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
names = [re.match(r"[A-Za-z0-9_.-]+", d).group(0) for d in deps]
out = []
for name in names:
    try:
        md.version(name)
    except md.PackageNotFoundError:
        out.append(name)
print(" ".join(out))
EOF
)
    echo "[run.sh] host JAX sees a GPU: using $("$PY" -c 'import sys; print(sys.executable)') as it is"
    mkdir -p "$SITE"
    if [ -n "$missing" ]; then
      echo "[run.sh] installing what it lacks into $SITE: $missing"
      # --no-deps: their own needs (numpy, absl-py, PyYAML, protobuf) are on such hosts.
      "$PY" -m pip install -q --no-deps --no-compile --target "$SITE" "${pip_from[@]}" $missing
    fi
    echo "$want" > "$STAMP"
  fi
  export PYTHONPATH="$PWD:$PWD/$SITE${PYTHONPATH:+:$PYTHONPATH}"
  RUNPY="$PY"
else
  VENV=.venv
  STAMP="$VENV/.offline_moe-installed"
  if [ ! -x "$VENV/bin/python" ]; then
    echo "[run.sh] creating $VENV with $($PY --version 2>&1)"
    "$PY" -m venv "$VENV"
  fi
  extras=test
  [ "$gpu" = 1 ] && extras=test,gpu
  want="$(sha256sum pyproject.toml | cut -d' ' -f1) $extras"
  if [ "$want" != "$(cat "$STAMP" 2>/dev/null || true)" ]; then
    echo "[run.sh] installing offline_moe (editable, extras: $extras) into $VENV"
    [ -z "$wheels" ] && "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q "${pip_from[@]}" -e ".[$extras]"
    echo "$want" > "$STAMP"
  fi
  RUNPY="$VENV/bin/python"
fi

export PYTHONUNBUFFERED=1
# TF (ingest side only) should stay quiet and never grab an accelerator.
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}

case "$cmd" in
  test)
    shift
    exec "$RUNPY" -m pytest -n "${PYTEST_WORKERS:-2}" --dist worksteal "$@"
    ;;
  lint)
    "$RUNPY" -m ruff check .
    exec "$RUNPY" -m ruff format --check .
    ;;
  device)
    shift
    exec "$RUNPY" -m offline_moe.bench device "$@"
    ;;
  bench)
    [ $# -gt 0 ] && shift
    exec "$RUNPY" -m offline_moe.default_benchmark "$@"
    ;;
  --*)
    exec "$RUNPY" -m offline_moe.default_benchmark "$@"
    ;;
  *)
    echo "usage: ./run.sh [--atari | --game=G ...] | test [pytest args] | lint | device [--minutes=N] [--report_dir=DIR]" >&2
    exit 2
    ;;
esac

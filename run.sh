#!/usr/bin/env bash
# offline_moe entry script.
#   ./run.sh            the embedded default benchmark (records, ingests, trains, evaluates, reports)
#   ./run.sh test [..]  the test suite (extra arguments go to pytest)
#   ./run.sh lint       ruff check + format check
# Creates .venv on first use and (re)installs the package into it whenever pyproject.toml changes.
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3}
VENV=.venv
STAMP="$VENV/.offline_moe-installed"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[run.sh] creating $VENV with $($PY --version 2>&1)"
  "$PY" -m venv "$VENV"
fi
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
have=$(cat "$STAMP" 2>/dev/null || true)
if [ "$want" != "$have" ]; then
  echo "[run.sh] installing offline_moe (editable, with test extra) into $VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e ".[test]"
  echo "$want" > "$STAMP"
fi

export PYTHONUNBUFFERED=1
# TF (ingest side only) should stay quiet and never grab an accelerator.
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}

cmd=${1:-bench}
case "$cmd" in
  test)
    shift
    exec "$VENV/bin/python" -m pytest -n "${PYTEST_WORKERS:-2}" "$@"
    ;;
  lint)
    "$VENV/bin/ruff" check .
    exec "$VENV/bin/ruff" format --check .
    ;;
  bench)
    [ $# -gt 0 ] && shift
    exec "$VENV/bin/python" -m offline_moe.default_benchmark "$@"
    ;;
  *)
    echo "usage: ./run.sh [test [pytest args] | lint]" >&2
    exit 2
    ;;
esac

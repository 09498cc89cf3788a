#!/usr/bin/env bash
# Create (idempotently) the reference venv at $REPO/.venv-ref with the pinned
# versions from tools/reference/requirements.txt. Used only to regenerate the
# test models and conformance data; CI never runs this.
#
# Usage: tools/reference/setup.sh            (uses $PYTHON, else python3.11, else python3)
#        PYTHON=/path/to/python3.11 tools/reference/setup.sh
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VENV="$REPO/.venv-ref"
REQ="$HERE/requirements.txt"

if [[ -z "${PYTHON:-}" ]]; then
  if command -v python3.11 >/dev/null 2>&1; then PYTHON=python3.11; else PYTHON=python3; fi
fi

pyver="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [[ "$pyver" != "3.11" ]]; then
  echo "warning: $PYTHON is Python $pyver; the data was generated with 3.11 (wheels may differ or be missing)" >&2
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "creating venv $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV"
fi

# Skip pip entirely when the venv already matches the pins exactly.
want="$(grep -Ev '^\s*(#|$)' "$REQ" | tr 'A-Z_' 'a-z-' | sort)"
have="$("$VENV/bin/python" -m pip freeze --all 2>/dev/null \
        | grep -Ev '^(pip|setuptools|wheel)==' | tr 'A-Z_' 'a-z-' | sort || true)"
if [[ "$want" == "$have" ]]; then
  echo "$VENV is up to date"
else
  "$VENV/bin/python" -m pip install --disable-pip-version-check -r "$REQ"
fi

"$VENV/bin/python" - <<'PY'
import numpy, tensorflow as tf, keras
from tflite_micro.python.tflite_micro import runtime  # noqa: F401
from ai_edge_litert.interpreter import Interpreter     # noqa: F401
print(f"ok: tensorflow {tf.__version__}, keras {keras.__version__}, numpy {numpy.__version__}")
PY

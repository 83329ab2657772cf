#!/usr/bin/env bash
# Creates .venv with Python >= 3.11 and installs the project with the given extras, once per
# change of pyproject.toml. Sourced by scripts/smart.sh and scripts/test.sh.
# Strict mode for this script only: a shell that sources it gets its own options back at the end
# (read from $- and -o, not $(set +o), which runs in a subshell where errexit is always off).
_smart_restore=""
[[ $- == *e* ]] || _smart_restore+="set +e;"
[[ $- == *u* ]] || _smart_restore+="set +u;"
[[ -o pipefail ]] || _smart_restore+="set +o pipefail;"
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EXTRAS="${SMART_EXTRAS:-dev}"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for cand in python3.11 python3.12 python3.13 python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      PY="$cand"; break
    fi
  done
fi
[ -n "$PY" ] || { echo "error: Python >= 3.11 is required (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
VENV="$ROOT/.venv"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
STAMP="$VENV/.smart-installed"
WANT="$( (cat "$ROOT/pyproject.toml"; echo "$EXTRAS") | sha256sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
  "$VENV/bin/python" -m pip install --quiet -e "$ROOT[$EXTRAS]" >&2
  echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
eval "$_smart_restore"
unset _smart_restore

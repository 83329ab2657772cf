#!/usr/bin/env bash
# Runs the linter and the whole test suite inside the project's own virtual environment.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/bootstrap.sh"
cd "$ROOT"
ruff check smart_core smart_langchain smart_llamaindex tests
ruff format --check smart_core smart_langchain smart_llamaindex tests
# Binaries for the Redis and PostgreSQL store tests (the tests start and stop the servers).
bash "$ROOT/scripts/services.sh"
exec python -m pytest -q "$@"

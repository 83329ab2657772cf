#!/usr/bin/env bash
# Runs the `smart` command line inside the project's own virtual environment (created on first use).
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/bootstrap.sh"
exec smart "$@"

#!/usr/bin/env bash
# The demo command: installs like scripts/test.sh, then runs `facta demo` (extra args are passed on).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/_venv.sh
facta demo "$@"

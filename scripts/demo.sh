#!/usr/bin/env bash
# The demo command: installs facta into .venv (no test tools), then runs `facta demo` (extra args
# are passed on).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
FACTA_INSTALL=demo source scripts/_venv.sh
facta demo "$@"

#!/usr/bin/env bash
# The test command: generated-code check, format, lint, types, then pytest (extra args go to pytest).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/_venv.sh
source scripts/_postgres.sh  # start PostgreSQL if it is installed but stopped
source scripts/_services.sh  # and the brokers the publishing tests use

python tools/gen_sync.py --check
python tools/check_imports.py
ruff format --check
ruff check
mypy
mkdir -p .ci-artifacts
pytest --junitxml=.ci-artifacts/junit.xml "$@"

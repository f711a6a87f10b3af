#!/usr/bin/env bash
# The test command: generated-code check, format, lint, types, then pytest (extra args go to pytest).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/_venv.sh

# PostgreSQL: start the local cluster if it is installed but not accepting connections.
if command -v pg_ctlcluster >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start
    for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
    pg_isready -h 127.0.0.1 -p 5432 || { echo "PostgreSQL did not start within 30 s" >&2; exit 1; }
fi

python tools/gen_sync.py --check
ruff format --check
ruff check
mypy
mkdir -p .ci-artifacts
pytest --junitxml=.ci-artifacts/junit.xml "$@"

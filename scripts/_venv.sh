# Sourced by scripts/*.sh from the repo root: makes .venv (if missing), installs the project
# with its postgres extra and dev tools (again only when pyproject.toml changed), puts .venv first on PATH.
if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
fi
stamp="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [[ "$(cat .venv/.installed 2>/dev/null)" != "$stamp" ]]; then
    .venv/bin/python -m pip install --quiet --upgrade 'pip>=25.1'  # 25.1 added --group
    .venv/bin/python -m pip install --quiet -e '.[postgres]' --group dev --group bench
    echo "$stamp" > .venv/.installed
fi
export PATH="$PWD/.venv/bin:$PATH"

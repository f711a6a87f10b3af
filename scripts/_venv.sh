# Sourced by scripts/*.sh from the repo root: makes .venv (if missing), installs the project into
# it (again only when pyproject.toml changed), puts .venv first on PATH. FACTA_INSTALL says what:
# "demo" installs facta with the personal extra (the demo forgets a customer); "test" (the
# default) adds the postgres extra and the dev, bench and docs groups.
what="${FACTA_INSTALL:-test}"
if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
fi
stamp="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [[ "$(cat ".venv/.installed-$what" 2>/dev/null)" != "$stamp" ]]; then
    .venv/bin/python -m pip install --quiet --upgrade 'pip>=25.1'  # 25.1 added --group
    if [[ "$what" == demo ]]; then
        .venv/bin/python -m pip install --quiet -e '.[personal]'
    else
        .venv/bin/python -m pip install --quiet -e '.[postgres,personal]' --group dev --group bench --group docs
        echo "$stamp" > .venv/.installed-demo  # the test install holds the demo's too
    fi
    echo "$stamp" > ".venv/.installed-$what"
fi
export PATH="$PWD/.venv/bin:$PATH"

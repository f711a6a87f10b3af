# Sourced by scripts/test.sh and .ci/run: start the local PostgreSQL cluster if it is installed
# but not accepting connections at 127.0.0.1:5432 (the tests never stop or reconfigure it).
if command -v pg_ctlcluster >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start
    for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
    pg_isready -h 127.0.0.1 -p 5432 || { echo "PostgreSQL did not start within 30 s" >&2; exit 1; }
fi

# Sourced by .ci/run: a throwaway PostgreSQL server for the journal tests, started as an
# unprivileged user (the server refuses to run as root) in a temporary directory, on loopback
# only, and stopped when the run ends. Exports ENERGY_ASYNC_TEST_PG_DSN for the tests.
# A developer can point the tests at a server of their own by setting that variable instead.

pg_bin_dir() {
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        [ -x "$dir/initdb" ] && { echo "$dir"; return 0; }
    done
    command -v initdb >/dev/null 2>&1 && { dirname "$(readlink -f "$(command -v initdb)")"; return 0; }
    return 1
}

if [ -z "${ENERGY_ASYNC_TEST_PG_DSN:-}" ]; then
    if ! pg_bin_dir >/dev/null; then
        echo "== installing PostgreSQL (Debian's postgresql package)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    fi
    pg_bin="$(pg_bin_dir)"
    pg_user=energyasync_ci
    id "$pg_user" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$pg_user"
    pg_dir="$(mktemp -d)"
    chown "$pg_user" "$pg_dir"
    pg_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    as_pg() { runuser -u "$pg_user" -- "$@"; }
    [ "$(id -u)" -eq 0 ] || as_pg() { "$@"; }
    as_pg "$pg_bin/initdb" -D "$pg_dir/data" -U postgres --auth=trust -E UTF8 >/dev/null
    as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w -o "-h 127.0.0.1 -p $pg_port -k $pg_dir -F" start >/dev/null
    stop_postgres() { as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$pg_dir"; }
    trap stop_postgres EXIT
    export ENERGY_ASYNC_TEST_PG_DSN="postgresql://postgres@127.0.0.1:$pg_port/postgres"
    echo "== PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$pg_port"
fi

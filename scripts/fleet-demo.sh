#!/usr/bin/env bash
# The fleet demo: PostgreSQL, mosquitto, three demo buildings (`lintel demo`, each its own site),
# two ingest workers, the catch-up session and the fleet's web page. Prints the page's URL and
# token; Ctrl-C stops it all.
#   scripts/fleet-demo.sh            (FLEET_DEMO_PORT=8080 and FLEET_DEMO_DIR=var/fleet-demo by default)
# Everything listens on 127.0.0.1 only, PostgreSQL trusts loopback: a demo, not a deployment
# (README, "Fleet service", for that).
set -euo pipefail
cd "$(dirname "$0")/.."
# (FLEET_DEMO_NO_SETUP=1: skip the set-up, for a machine where it has run)
[[ -n ${FLEET_DEMO_NO_SETUP:-} ]] || scripts/setup.sh --test >/dev/null
root=$PWD
py=$root/.venv/bin/python
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
work=$(realpath -m "${FLEET_DEMO_DIR:-var/fleet-demo}")
web_port=${FLEET_DEMO_PORT:-8080}
rm -rf "$work" && mkdir -p "$work"
free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
pg_port=$(free_port)
mq_port=$(free_port)
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)

# PostgreSQL refuses to run as root: as root, its cluster belongs to the `postgres` user, in a
# folder that user can reach.
pgdir=$(mktemp -d "${TMPDIR:-/tmp}/lintel-fleet-demo-pg.XXXXXX")
chmod 755 "$pgdir"
as_pg() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[[ $(id -u) == 0 ]] && chown postgres: "$pgdir"

pids=()
cleanup() {
    trap - EXIT INT TERM
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    as_pg "$pgbin/pg_ctl" -D "$pgdir/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$pgdir"
}
trap cleanup EXIT INT TERM

echo "PostgreSQL on 127.0.0.1:$pg_port, mosquitto on 127.0.0.1:$mq_port, logs in $work"
as_pg "$pgbin/initdb" -D "$pgdir/data" -U fleet --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
as_pg "$pgbin/pg_ctl" -D "$pgdir/data" -l "$pgdir/postgres.log" -w \
    -o "-p $pg_port -k $pgdir -c listen_addresses=127.0.0.1" start >/dev/null
dsn="postgresql://fleet@127.0.0.1:$pg_port/postgres"

# The fleet's broker keeps sessions across a restart (persistence): the workers rely on it.
mkdir -p "$work/mosquitto"
cat >"$work/mosquitto.conf" <<CONF
$([[ $(id -u) == 0 ]] && echo "user root")
listener $mq_port 127.0.0.1
allow_anonymous true
persistence true
persistence_location $work/mosquitto/
# mosquitto keeps 1,000 queued messages per offline session by default and drops the rest: a
# worker that is down for a moment must find everything the group sent it
max_queued_messages 0
CONF
mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
pids+=($!)
broker="mqtt://127.0.0.1:$mq_port"

"$py" -m fleet.cli --log-level warning migrate --db "$dsn" >/dev/null

# The service's key may acknowledge alarms and nothing else; the operator's key stays with the
# operator (here: beside the demo) and may also pulse doors.
public() { "$py" -c 'import json, sys; print(json.load(sys.stdin)["public_key"])'; }
ack_pub=$("$py" -m gateway.cli.main keys new --id fleet-ack --out "$work/fleet-ack.key" --json 2>/dev/null | public)
op_pub=$("$py" -m gateway.cli.main keys new --id operator --out "$work/operator.key" --json 2>/dev/null | public)
cat >"$work/building.toml" <<TOML
[commands]
allow = ["ping", "alarm_ack", "door_pulse"]
# a demo machine may run no time daemon: trust its clock (a real building keeps the default, "kernel")
clock_sync = "assume"

[[commands.operators]]
id = "fleet-ack"
public_key = "$ack_pub"
allow = ["alarm_ack"]

[[commands.operators]]
id = "operator"
public_key = "$op_pub"
allow = ["ping", "alarm_ack", "door_pulse"]
doors = ["*"]

# an alarm in each building at once (the house draws ~2.5 kW)
[[rules]]
id = "fleet-demo-load"
type = "threshold"
source = "meter-house"
point = "power_w"
above = 100
TOML

for w in 1 2; do
    "$py" -m fleet.cli ingest --db "$dsn" --broker "$broker" --worker-id "fleet-demo-w$w" >"$work/worker-$w.log" 2>&1 &
    pids+=($!)
done
# one catch-up session per fleet: mosquitto 2.0 forgets the workers' shared subscriptions when it
# restarts, and this session writes what the buildings publish before the workers are back
"$py" -m fleet.cli catchup --db "$dsn" --broker "$broker" --id fleet-demo-catchup >"$work/catchup.log" 2>&1 &
pids+=($!)
for b in riverside:bldg-river harbour:bldg-harbour hillcrest:bldg-hill; do
    site=${b%%:*} gid=${b##*:}
    "$py" -m gateway.cli.main demo --plain --broker "$broker" --state-dir "$work/$gid" --site "$site" \
        --gateway-id "$gid" --config-extra "$work/building.toml" >"$work/$gid.log" 2>&1 &
    pids+=($!)
done
"$py" -c 'import secrets; print(secrets.token_hex(24))' >"$work/token"
chmod 600 "$work/token"
"$py" -m fleet.cli serve --db "$dsn" --broker "$broker" --listen "127.0.0.1:$web_port" \
    --token-file "$work/token" --ack-key "$work/fleet-ack.key" >"$work/web.log" 2>&1 &
pids+=($!)

cat <<MSG

Fleet page:  http://127.0.0.1:$web_port/    token: $(cat "$work/token")
Operator:    LINTEL_FLEET_DB=$dsn LINTEL_FLEET_BROKER=$broker \\
             $py -m fleet.cli gateways      (alarms, devices, loss GATEWAY,
             ... command --key $work/operator.key bldg-river ping)
Buildings appear within a minute (their first stats). Ctrl-C stops everything.
MSG
wait

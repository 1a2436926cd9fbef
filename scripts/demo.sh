#!/usr/bin/env bash
# corral's first run. A throwaway PostgreSQL with customers and orders runs
# on a test host (its own network namespace, joined to this host by a veth
# pair) at an address psql believes is the real database. corral protects
# it: the unmodified psql is caught in the kernel, logged in with a
# credential it never sees, its statements are decided by policy, and
# sensitive columns are masked. Everything is removed on exit.
set -euo pipefail

corral=${1:-bin/corral}
[ "$(id -u)" = 0 ] || { echo "demo: run as root (eBPF, network namespaces)"; exit 1; }
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)

ns=corral-demo
veth=crldemo0
host_ip=198.18.255.253   # 198.18.0.0/15: reserved for benchmarking, never a real network
db_ip=198.18.255.254
work=$(mktemp -d /tmp/corral-demo.XXXXXX)
chmod 755 "$work"
pin=/sys/fs/bpf/corral-demo
agent_pid= pg_pid=

cleanup() {
	set +e
	[ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null
	[ -n "$pg_pid" ] && kill -INT "$pg_pid" 2>/dev/null && wait "$pg_pid" 2>/dev/null
	ip link del "$veth" 2>/dev/null
	ip netns del "$ns" 2>/dev/null
	"$corral" unpin --pin-dir "$pin" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '\033[2m$ %s\033[0m\n' "$*"; "$@" || true; }

step "a throwaway PostgreSQL at $db_ip:5432 on a test host"
ip netns add "$ns"
ip link add "$veth" type veth peer name eth0 netns "$ns"
ip addr add "$host_ip/30" dev "$veth"
ip link set "$veth" up
ip -n "$ns" addr add "$db_ip/30" dev eth0
ip -n "$ns" link set eth0 up
ip -n "$ns" link set lo up
mkdir "$work/pg" && chown postgres:postgres "$work/pg"
su postgres -s /bin/sh -c "$pgbin/initdb -D $work/pg/data -U postgres --auth-local=trust --auth-host=scram-sha-256 >/dev/null"
echo "host all all $host_ip/32 scram-sha-256" >> "$work/pg/data/pg_hba.conf"
cat >> "$work/pg/data/postgresql.conf" <<CONF
listen_addresses = '$db_ip'
unix_socket_directories = '$work/pg'
CONF
nsenter --net=/run/netns/$ns --setuid "$(id -u postgres)" --setgid "$(id -g postgres)" \
	"$pgbin/postgres" -D "$work/pg/data" >"$work/pg/server.log" 2>&1 &
pg_pid=$!
for _ in $(seq 100); do "$pgbin/pg_isready" -q -h "$work/pg" && break; sleep 0.1; done
psql -X -q -h "$work/pg" -U postgres <<'SQL'
CREATE DATABASE shop;
\c shop
CREATE TABLE customers (id int PRIMARY KEY, name text, email text, card_number text);
INSERT INTO customers VALUES
  (1, 'Ada Lovelace', 'ada@example.com', '4111 1111 1111 1111'),
  (2, 'Grace Hopper', 'grace@example.org', '5500 0000 0000 0004');
CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers, amount numeric);
INSERT INTO orders VALUES (1, 1, 42.00), (2, 2, 17.50);
CREATE ROLE shop_app LOGIN PASSWORD 'only-corral-knows-this';
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO shop_app;
SQL
echo "only-corral-knows-this" > "$work/shop-app.password"
chmod 600 "$work/shop-app.password"

cat > "$work/corral.yaml" <<YAML
targets:
  - name: shop-db
    protocol: postgres
    endpoints: ["$db_ip:5432"]
    credentials:
      default: {username: shop_app, password_file: $work/shop-app.password}
    upstream_tls: {mode: disable}   # this throwaway server has no certificate; the default is verify-full
rules:
  - name: analysts-psql
    who: {exe: "/usr/lib/postgresql/*/bin/psql"}
    targets: [shop-db]
    allow: [select, insert, update, transaction, set, show]
    review: {operations: [delete], reviewers: ["group:dba", "user:root"], timeout: 1m}
    deny: [drop, truncate, "copy program", "set role", function]
    mask:
      - {columns: [customers.email], method: partial}
      - {columns: [customers.card_number], method: redact}
audit_log: $work/audit.log
state_dir: $work
admin_socket: $work/admin.sock
bpf_pin_dir: $pin
YAML
step "corral protects shop-db ($db_ip:5432); psql may read, never drop; emails and cards are masked"
sed -n '1,20p' "$work/corral.yaml"
"$corral" agent --config "$work/corral.yaml" 2>"$work/agent.log" &
agent_pid=$!
for _ in $(seq 100); do grep -q "corral agent ready" "$work/agent.log" && break; sleep 0.1; done
grep -q "corral agent ready" "$work/agent.log" || { cat "$work/agent.log"; exit 1; }

# The workload: plain psql, pointed at the database's address, with a
# password that is wrong (it has no business knowing the real one).
export PGPASSWORD=i-do-not-know-it PGCONNECT_TIMEOUT=5
q() { run psql -X -w -h "$db_ip" -U anyone -d shop -c "$1"; }

step "an allowed SELECT: the sensitive columns come back masked"
q "SELECT id, name, email, card_number FROM customers ORDER BY id"
step "a blocked DROP TABLE (comments and case do not help: PostgreSQL's own parser decides)"
q "/* cleanup */ dRoP TABLE customers"
step "a masked column smuggled through an expression is refused"
q "SELECT lower(email) FROM customers"
step "a DELETE waits for a reviewer: psql is told, corral requests lists it, a reviewer denies it"
# The workload runs as nobody here: root decides, and no one decides
# their own request.
setpriv --reuid=nobody --regid=nogroup --clear-groups \
  psql -X -w -h "$db_ip" -U anyone -d shop -c "DELETE FROM orders WHERE id = 2" &
psql_pid=$!
request=
for _ in $(seq 100); do
  request=$("$corral" requests --socket "$work/admin.sock" --json | jq -r '.[0].id // empty')
  [ -n "$request" ] && break
  sleep 0.1
done
run "$corral" requests --socket "$work/admin.sock"
run "$corral" deny "$request" --reason "orders are never deleted by hand" --socket "$work/admin.sock"
wait "$psql_pid" || true
step "the table is still there, the order too"
psql -X -At -h "$work/pg" -U postgres -d shop -c "SELECT count(*) || ' customers, ' || (SELECT count(*) FROM orders) || ' orders' FROM customers"

step "the audit trail"
for _ in $(seq 50); do [ "$(grep -c '"event":"close"' "$work/audit.log" 2>/dev/null)" -ge 4 ] && break; sleep 0.1; done
jq -r 'if .event == "approval" then "    approval \(.approval.request) \(.approval.step) \(.approval.decided_by // "") \(.approval.decision_reason // "")"
       elif .event == "statement" then "    \(.statement.decision)  \(.statement.text)  \(.statement.reason // "" | if . == "" then "" else "(\(.))" end)"
       else "\(.event) \(.session_id) \(.target) \(.orig_dst) \(.workload.exe // "") pid \(.workload.pid // "")" end' "$work/audit.log"

step "every session was recorded, hash-chained; the first one replayed, all verified"
first=$("$corral" sessions --config "$work/corral.yaml" --json | tail -n 1 | jq -r .session_id)
run "$corral" sessions --config "$work/corral.yaml"
run "$corral" replay --config "$work/corral.yaml" "$first"
run "$corral" verify --config "$work/corral.yaml" --all

step "done: database, agent and eBPF programs removed"

#!/usr/bin/env bash
# corral's first run: a service on a test host (its own network namespace,
# joined to this host by a veth pair) is declared protected; an unmodified
# client (curl) connects to it; corral catches the connection in the kernel,
# relays it, and writes who connected where to its audit log. Everything it
# creates is removed on exit.
set -euo pipefail

corral=${1:-bin/corral}
[ "$(id -u)" = 0 ] || { echo "demo: run as root (eBPF, network namespaces)"; exit 1; }

ns=corral-demo
veth=crldemo0
host_ip=198.18.255.253   # 198.18.0.0/15: reserved for benchmarking, never a real network
svc_ip=198.18.255.254
port=8080
work=$(mktemp -d /tmp/corral-demo.XXXXXX)
pin=/sys/fs/bpf/corral-demo
agent_pid= server_pid=

cleanup() {
	set +e
	[ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null
	[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
	ip link del "$veth" 2>/dev/null
	ip netns del "$ns" 2>/dev/null
	"$corral" unpin --pin-dir "$pin" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "a test host at $svc_ip serving HTTP on :$port"
ip netns add "$ns"
ip link add "$veth" type veth peer name eth0 netns "$ns"
ip addr add "$host_ip/30" dev "$veth"
ip link set "$veth" up
ip -n "$ns" addr add "$svc_ip/30" dev eth0
ip -n "$ns" link set eth0 up
ip -n "$ns" link set lo up
mkdir -p "$work/www"
echo "hello from the protected service" > "$work/www/hello.txt"
ip netns exec "$ns" python3 -m http.server "$port" --bind "$svc_ip" --directory "$work/www" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://$svc_ip:$port/" && break; sleep 0.1; done

step "curl before corral runs: a direct connection"
curl -s -w '  (connected to %{remote_ip}:%{remote_port})\n' "http://$svc_ip:$port/hello.txt"

cat > "$work/corral.yaml" <<YAML
targets:
  - name: demo-api
    protocol: tcp
    endpoints: ["$svc_ip:$port"]
rules:
  - name: curl-only
    who: {exe: /usr/bin/curl}
    targets: [demo-api]
    allow: [connect]
audit_log: $work/audit.log
state_dir: $work
bpf_pin_dir: $pin
YAML
step "corral agent protecting demo-api ($svc_ip:$port) for every process on this host"
cat "$work/corral.yaml"
"$corral" agent --config "$work/corral.yaml" 2>"$work/agent.log" &
agent_pid=$!
for _ in $(seq 100); do grep -q "corral agent ready" "$work/agent.log" && break; sleep 0.1; done
grep -q "corral agent ready" "$work/agent.log" || { cat "$work/agent.log"; exit 1; }

step "the same curl, unchanged: caught in the kernel, relayed by corral"
curl -s -w '  (the socket is connected to %{remote_ip}: corral'"'"'s listener in this network namespace)\n' "http://$svc_ip:$port/hello.txt"

step "python3 is not curl: the rule does not cover it, so corral cuts it off"
python3 - "$svc_ip" "$port" <<'PY' || true
import sys, urllib.request
try:
    urllib.request.urlopen(f"http://{sys.argv[1]}:{sys.argv[2]}/hello.txt", timeout=5)
    print("  python3 got through (unexpected)")
except Exception as e:
    print(f"  python3: {e}")
PY
# The relay logs a session's close once both sides are done.
for _ in $(seq 50); do grep -q '"event":"close"' "$work/audit.log" 2>/dev/null && break; sleep 0.1; done

step "the audit trail: who connected where, and what the policy said"
jq -c '{event, target, orig_dst, decision, reason, exe: .workload.exe, pid: .workload.pid, bytes_up, bytes_down}' "$work/audit.log"

step "corral stops; with --keep-pinned it would keep refusing connections to demo-api until it is back"
kill "$agent_pid"; wait "$agent_pid" || true; agent_pid=
grep -E "level=(WARN|ERROR)" "$work/agent.log" || true
echo "done: test host, agent and eBPF programs removed"

//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// corral's kernel side: redirect TCP connects to protected targets into the
// agent's per-netns listener and remember where each one was going and who
// opened it. See DESIGN.md §3 for the reasoning behind every map.

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef IPPROTO_TCP
#define IPPROTO_TCP 6
#endif
#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

char LICENSE[] SEC("license") = "Dual BSD/GPL";

// Set by the loader before the programs are loaded: the cgroup the agent runs
// in (its own upstream dials must never come back to it, and only they are
// exempt) and the socket mark it puts on its sockets, so that only its
// listeners receive redirected connections. The mark alone exempts nothing:
// since Linux 5.17 CAP_NET_RAW is enough to set one, and container runtimes
// give that to workloads by default.
volatile const __u64 agent_cgroup_id = 0;
volatile const __u32 agent_mark = 0;

enum counter {
	COUNTER_PASSED = 0,     // connect to something that is not a target
	COUNTER_REDIRECTED = 1, // target: sent to the agent's listener
	COUNTER_REFUSED = 2,    // target, but no live listener: EPERM
	COUNTER_EXEMPT = 3,     // target, but the agent's own dial
	COUNTER_MAX = 4,
};

enum refuse_reason {
	REFUSE_NO_LISTENER = 1,   // no listener of the agent's in this netns
	REFUSE_DEAD_LISTENER = 2, // registered, but no marked socket listens there
	REFUSE_NO_STORAGE = 3,    // could not remember the original destination
};

// LPM key: the port (network order) comes first and is always matched in
// full, then the address in its 16-byte form (IPv4 as ::ffff:a.b.c.d), so one
// trie answers for IPv4, IPv6 and CIDRs of both.
struct target_key {
	__u32 prefixlen;
	__u8 port[2];
	__u8 addr[16];
	__u8 pad[2];
};

struct target_val {
	__u32 id;
};

struct listener {
	__u16 port4; // host order; 0 = none
	__u16 port6; // host order; 0 = none
	__u32 pad;
};

struct orig_rec {
	__u8 addr[16]; // original destination, IPv4 mapped
	__u16 port;    // host order
	__u16 family;  // of the client's socket
	__u32 target_id;
	__u64 cgroup_id;
	__u64 netns_cookie;
	__u32 pid; // tgid, initial pid namespace
	__u32 uid;
	__u32 gid;
	__u32 pad;
	char comm[16];
};

// What the agent sees of an accepted connection: the client's end of it.
struct tuple_key {
	__u64 netns_cookie;
	__u8 addr[16]; // client address, IPv4 mapped
	__u16 sport;   // client port, host order
	__u16 dport;   // listener port, host order
	__u32 pad;
};

struct event {
	__u64 netns_cookie;
	__u32 pid;
	__u32 reason;
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct target_key);
	__type(value, struct target_val);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} targets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u64); // netns cookie
	__type(value, struct listener);
	__uint(max_entries, 16384);
} netns_listener SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__type(key, int);
	__type(value, struct orig_rec);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} sk_orig SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct tuple_key);
	__type(value, struct orig_rec);
	__uint(max_entries, 65536);
} conn_by_tuple SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, COUNTER_MAX);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} events SEC(".maps");

static __always_inline void count(__u32 c)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &c);
	if (v)
		*v += 1;
}

static __always_inline void report(__u64 cookie, __u32 reason)
{
	struct event ev = {
		.netns_cookie = cookie,
		.pid = bpf_get_current_pid_tgid() >> 32,
		.reason = reason,
	};
	// Best effort: a full ring only delays the agent's rescan to its timer.
	bpf_ringbuf_output(&events, &ev, sizeof(ev), 0);
}

static __always_inline int refuse(__u64 cookie, __u32 reason)
{
	count(COUNTER_REFUSED);
	report(cookie, reason);
	return 0; // connect() fails with EPERM
}

// listener_port returns the port of the agent's listener of the given
// family in the caller's netns, or 0 with *reason set. The port alone is not
// trusted: a socket must be listening there and carry the agent's mark, so
// neither a crashed agent's stale entry nor a workload that binds the port
// after it can receive redirected connections.
static __always_inline __u16 listener_port(struct bpf_sock_addr *ctx, __u64 cookie, int v6, __u32 *reason)
{
	struct bpf_sock_tuple t = {};
	struct listener *l;
	struct bpf_sock *ls;
	__u32 size;
	__u16 port;

	l = bpf_map_lookup_elem(&netns_listener, &cookie);
	port = l ? (v6 ? l->port6 : l->port4) : 0;
	if (!port) {
		*reason = REFUSE_NO_LISTENER;
		return 0;
	}
	if (v6) {
		t.ipv6.daddr[3] = bpf_htonl(1);
		t.ipv6.dport = bpf_htons(port);
		size = sizeof(t.ipv6);
	} else {
		t.ipv4.daddr = bpf_htonl(0x7f000001);
		t.ipv4.dport = bpf_htons(port);
		size = sizeof(t.ipv4);
	}
	ls = bpf_sk_lookup_tcp(ctx, &t, size, BPF_F_CURRENT_NETNS, 0);
	if (!ls) {
		*reason = REFUSE_DEAD_LISTENER;
		return 0;
	}
	if (ls->state != BPF_TCP_LISTEN || ls->mark != agent_mark) {
		*reason = REFUSE_DEAD_LISTENER;
		port = 0;
	}
	bpf_sk_release(ls);
	return port;
}

// redirect is the common path for connect4 and connect6 once the destination
// is in its 16-byte form. It returns 1 to let connect() proceed (to the
// original or the rewritten address) and 0 to refuse it. v4 must be a
// constant: the verifier rejects any user_ip6 access in a connect4 program,
// even on a path that never runs, so the compiler has to drop that path.
static __always_inline int redirect(struct bpf_sock_addr *ctx, struct target_key *key, const int v4, int native_v6)
{
	struct target_val *tv;
	struct orig_rec *rec;
	struct bpf_sock *sk;
	__u32 reason = 0;
	__u64 cookie;
	__u16 port;

	sk = ctx->sk;
	tv = bpf_map_lookup_elem(&targets, key);
	if (!tv) {
		// A record left by an earlier connect of this socket that failed
		// after it was redirected must not name this connection: another
		// process may hold the socket now, and connect it straight to the
		// listener.
		if (sk)
			bpf_sk_storage_delete(&sk_orig, sk);
		count(COUNTER_PASSED);
		return 1;
	}

	if (bpf_get_current_cgroup_id() == agent_cgroup_id) {
		count(COUNTER_EXEMPT);
		return 1;
	}

	cookie = bpf_get_netns_cookie(ctx);
	port = listener_port(ctx, cookie, native_v6, &reason);
	if (!port)
		return refuse(cookie, reason);

	if (!sk)
		return refuse(cookie, REFUSE_NO_STORAGE);
	rec = bpf_sk_storage_get(&sk_orig, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!rec)
		return refuse(cookie, REFUSE_NO_STORAGE);

	__builtin_memcpy(rec->addr, key->addr, sizeof(rec->addr));
	rec->port = ((__u16)key->port[0] << 8) | key->port[1];
	rec->family = v4 ? AF_INET : AF_INET6;
	rec->target_id = tv->id;
	rec->cgroup_id = bpf_get_current_cgroup_id();
	rec->netns_cookie = cookie;
	rec->pid = bpf_get_current_pid_tgid() >> 32;
	__u64 ug = bpf_get_current_uid_gid();
	rec->uid = (__u32)ug;
	rec->gid = ug >> 32;
	bpf_get_current_comm(rec->comm, sizeof(rec->comm));

	if (v4) {
		ctx->user_ip4 = bpf_htonl(0x7f000001);
	} else if (native_v6) {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = 0;
		ctx->user_ip6[3] = bpf_htonl(1);
	} else {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0xffff);
		ctx->user_ip6[3] = bpf_htonl(0x7f000001);
	}
	ctx->user_port = bpf_htons(port);
	count(COUNTER_REDIRECTED);
	return 1;
}

// unspecified4 is where the kernel sends a TCP connect to 0.0.0.0: to the
// socket's bound source address, or to 127.0.0.1 (ip_route_connect). A
// target is matched by that address, or connecting to 0.0.0.0 would reach
// a node-local target around corral.
static __always_inline __u32 unspecified4(struct bpf_sock_addr *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	__u32 src = 0;

	if (sk)
		src = sk->src_ip4;
	return src ? src : bpf_htonl(0x7f000001);
}

SEC("cgroup/connect4")
int corral_connect4(struct bpf_sock_addr *ctx)
{
	struct target_key key = {};
	__u32 ip = ctx->user_ip4;
	__u16 port = ctx->user_port;

	if (ctx->protocol != IPPROTO_TCP)
		return 1;
	if (ip == 0)
		ip = unspecified4(ctx);

	key.prefixlen = 16 + 128;
	__builtin_memcpy(key.port, &port, 2);
	key.addr[10] = 0xff;
	key.addr[11] = 0xff;
	__builtin_memcpy(&key.addr[12], &ip, 4);
	return redirect(ctx, &key, 1, 0);
}

SEC("cgroup/connect6")
int corral_connect6(struct bpf_sock_addr *ctx)
{
	struct target_key key = {};
	__u32 w0 = *(volatile __u32 *)&ctx->user_ip6[0];
	__u32 w1 = *(volatile __u32 *)&ctx->user_ip6[1];
	__u32 w2 = *(volatile __u32 *)&ctx->user_ip6[2];
	__u32 w3 = *(volatile __u32 *)&ctx->user_ip6[3];
	__u16 port = ctx->user_port;

	if (ctx->protocol != IPPROTO_TCP)
		return 1;
	if ((w0 | w1 | w2 | w3) == 0) {
		// :: is ::1 to the kernel, or ::ffff:127.0.0.1 for a socket bound
		// to a v4-mapped address (tcp_v6_connect).
		struct bpf_sock *sk = ctx->sk;
		if (sk && sk->src_ip6[0] == 0 && sk->src_ip6[1] == 0 && sk->src_ip6[2] == bpf_htonl(0xffff)) {
			w2 = bpf_htonl(0xffff);
			w3 = bpf_htonl(0x7f000001);
		} else {
			w3 = bpf_htonl(1);
		}
	} else if (w0 == 0 && w1 == 0 && w2 == bpf_htonl(0xffff) && w3 == 0) {
		// ::ffff:0.0.0.0 is an IPv4 connect to 0.0.0.0.
		w3 = unspecified4(ctx);
	}

	key.prefixlen = 16 + 128;
	__builtin_memcpy(key.port, &port, 2);
	__builtin_memcpy(&key.addr[0], &w0, 4);
	__builtin_memcpy(&key.addr[4], &w1, 4);
	__builtin_memcpy(&key.addr[8], &w2, 4);
	__builtin_memcpy(&key.addr[12], &w3, 4);
	// A v4-mapped destination is an IPv4 connection in disguise: it matches
	// the IPv4 targets (same key form) and goes to the IPv4 listener.
	int mapped = w0 == 0 && w1 == 0 && w2 == bpf_htonl(0xffff);
	return redirect(ctx, &key, 0, !mapped);
}

// Runs in the client's socket context when its handshake completes, before
// the final ACK reaches the agent's listener, so the record is always there
// by the time the agent accepts. "current" here is not the workload, which is
// why every identity fact was captured in connect.
SEC("sockops")
int corral_sockops(struct bpf_sock_ops *skops)
{
	struct tuple_key key = {};
	struct orig_rec *rec;
	struct bpf_sock *sk;

	if (skops->op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB)
		return 1;
	sk = skops->sk;
	if (!sk)
		return 1;
	rec = bpf_sk_storage_get(&sk_orig, sk, 0, 0);
	if (!rec)
		return 1;

	key.netns_cookie = rec->netns_cookie;
	if (skops->family == AF_INET) {
		__u32 ip = skops->local_ip4;
		key.addr[10] = 0xff;
		key.addr[11] = 0xff;
		__builtin_memcpy(&key.addr[12], &ip, 4);
	} else {
		// One 4-byte load per word: the verifier refuses the 8-byte loads
		// the compiler would otherwise merge these into.
		__u32 w0 = *(volatile __u32 *)&skops->local_ip6[0];
		__u32 w1 = *(volatile __u32 *)&skops->local_ip6[1];
		__u32 w2 = *(volatile __u32 *)&skops->local_ip6[2];
		__u32 w3 = *(volatile __u32 *)&skops->local_ip6[3];
		__builtin_memcpy(&key.addr[0], &w0, 4);
		__builtin_memcpy(&key.addr[4], &w1, 4);
		__builtin_memcpy(&key.addr[8], &w2, 4);
		__builtin_memcpy(&key.addr[12], &w3, 4);
	}
	key.sport = skops->local_port;
	key.dport = bpf_ntohl(skops->remote_port);
	bpf_map_update_elem(&conn_by_tuple, &key, rec, BPF_ANY);
	return 1;
}

// Package bpf owns corral's eBPF programs and is the only package that talks
// to the kernel's BPF interface.
//
// The programs (corral.bpf.c) redirect TCP connects to protected targets into
// the agent's per-network-namespace listener and record, per connection, the
// original destination and the identity of the process that opened it. This
// package loads them, attaches them to a cgroup2 directory with links pinned
// in bpffs (so redirection survives an agent restart and fails closed while
// the agent is down), keeps the target and listener maps up to date, hands
// the agent the record of each accepted connection, and reads the counters
// and the refusal events.
//
// The generated corral_bpfel.go and corral_bpfel.o are committed: building
// corral needs no clang; `go generate ./bpf` rebuilds them.
package bpf

package agent

// schedulerProcs is how many CPUs the agent runs Go code on (GOMAXPROCS),
// or 0 to leave the runtime's choice: configured when set; the runtime's
// when GOMAXPROCS is set in the environment or a CPU quota already holds
// the runtime below the CPUs the process may run on (limits), where
// someone chose the agent's share; else half of the CPUs, at least one.
//
// Why half: the agent shares its node with the workloads it proxies and
// the servers they talk to, and every byte it moves costs them CPU too.
// Go's scheduler, given every CPU, wakes idle ones to look for work each
// time a connection becomes readable; on a small node that spinning and
// the cross-CPU wake-ups cost more than the parallelism gives. On two
// CPUs, one was measured to cut the agent's CPU time per pgbench
// transaction (8 clients) and per MiB through SSH by about a quarter, with
// throughput up (see the README's performance section).
func schedulerProcs(configured int, env string, available, cpus int) int {
	switch {
	case configured > 0:
		return configured
	case env != "", available < cpus:
		return 0
	}
	return max(1, available/2)
}

package agent

import "testing"

func TestSchedulerProcs(t *testing.T) {
	for _, tc := range []struct {
		configured int
		env        string
		available  int // the runtime's GOMAXPROCS
		cpus       int // the CPUs the process may run on
		want       int
	}{
		{0, "", 2, 2, 1},
		{0, "", 1, 1, 1},
		{0, "", 16, 16, 8},
		{0, "", 3, 3, 1},
		{0, "", 2, 16, 0},   // a CPU quota (a pod's limit) already chose
		{0, "4", 16, 16, 0}, // so did the environment
		{3, "4", 16, 16, 3}, // the configuration wins
		{2, "", 1, 1, 2},
	} {
		if got := schedulerProcs(tc.configured, tc.env, tc.available, tc.cpus); got != tc.want {
			t.Errorf("schedulerProcs(%d, %q, %d, %d) = %d, want %d", tc.configured, tc.env, tc.available, tc.cpus, got, tc.want)
		}
	}
}

package intercept_test

import (
	"encoding/json"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/corral-dev/corral/intercept"
)

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func requireKeys(t *testing.T, where string, m map[string]any, want ...string) {
	t.Helper()
	for _, k := range want {
		if _, ok := m[k]; !ok {
			t.Errorf("%s: key %q missing (have %v)", where, k, keys(m))
		}
	}
}

func object(t *testing.T, where string, v any) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s is %T, want an object", where, v)
	}
	return m
}

func marshalToMap(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestEventJSONFieldNames(t *testing.T) {
	ms := 12.5
	ev := intercept.Event{
		Time:      time.Date(2025, 3, 4, 5, 6, 7, 8000, time.UTC),
		Event:     intercept.EventClose,
		SessionID: "s-0123456789abcdef0123",
		Target:    "orders-db",
		Protocol:  "tcp",
		OrigDst:   "10.0.0.5:5432",
		Client:    "127.0.0.1:40000",
		Workload: &intercept.Identity{
			CgroupID:    77,
			CgroupPath:  "/kubepods/pod1/c0ffee",
			PID:         1234,
			Exe:         "/usr/bin/psql",
			UID:         1000,
			Unit:        "",
			ContainerID: "c0ffee",
			Pod:         intercept.Pod{UID: "pod-uid", Namespace: "etl", Name: "job-1", ServiceAccount: "migrator"},
		},
		BytesUp:       11,
		BytesDown:     22,
		DurationMS:    &ms,
		Error:         "boom",
		Decision:      "allow",
		Reason:        "rule etl-jobs allows connect",
		Rule:          "etl-jobs",
		PolicyVersion: 5,
	}
	m := marshalToMap(t, ev)
	requireKeys(t, "event", m, "time", "event", "session_id", "target", "protocol", "orig_dst", "client",
		"workload", "bytes_up", "bytes_down", "duration_ms", "error", "decision", "reason", "rule", "policy_version")
	w := object(t, "workload", m["workload"])
	requireKeys(t, "workload", w, "cgroup_id", "cgroup_path", "pid", "exe", "uid", "unit", "pod", "container_id")
	pod := object(t, "workload.pod", w["pod"])
	requireKeys(t, "workload.pod", pod, "uid", "namespace", "name", "service_account")

	checks := map[string]any{
		"time":           "2025-03-04T05:06:07.000008Z",
		"event":          "close",
		"session_id":     "s-0123456789abcdef0123",
		"target":         "orders-db",
		"protocol":       "tcp",
		"orig_dst":       "10.0.0.5:5432",
		"client":         "127.0.0.1:40000",
		"bytes_up":       11.0,
		"bytes_down":     22.0,
		"duration_ms":    12.5,
		"error":          "boom",
		"decision":       "allow",
		"reason":         "rule etl-jobs allows connect",
		"rule":           "etl-jobs",
		"policy_version": 5.0,
	}
	for k, want := range checks {
		if m[k] != want {
			t.Errorf("%s = %#v, want %#v", k, m[k], want)
		}
	}
	if w["cgroup_id"] != 77.0 || w["pid"] != 1234.0 || w["uid"] != 1000.0 || w["exe"] != "/usr/bin/psql" ||
		w["cgroup_path"] != "/kubepods/pod1/c0ffee" || w["container_id"] != "c0ffee" || w["unit"] != "" {
		t.Errorf("workload = %v", w)
	}
	if pod["uid"] != "pod-uid" || pod["namespace"] != "etl" || pod["name"] != "job-1" || pod["service_account"] != "migrator" {
		t.Errorf("pod = %v", pod)
	}

	// Consumers read the log back into the same type.
	b, _ := json.Marshal(ev)
	var back intercept.Event
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !back.Time.Equal(ev.Time) {
		t.Errorf("time round trip: %v, want %v", back.Time, ev.Time)
	}
	back.Time = ev.Time
	if !reflect.DeepEqual(back, ev) {
		t.Errorf("round trip:\n got %+v\nwant %+v", back, ev)
	}
}

func TestEventJSONUnconditionalFields(t *testing.T) {
	// The counters are present even when zero, the optional fields are
	// absent.
	m := marshalToMap(t, intercept.Event{Event: intercept.EventOpen, Workload: &intercept.Identity{}})
	requireKeys(t, "open event", m, "time", "event", "session_id", "target", "protocol", "orig_dst", "client",
		"workload", "bytes_up", "bytes_down")
	for _, k := range []string{"duration_ms", "error", "decision", "reason", "rule", "policy_version"} {
		if _, ok := m[k]; ok {
			t.Errorf("open event has %q: %v", k, m[k])
		}
	}
	w := object(t, "workload", m["workload"])
	requireKeys(t, "empty workload", w, "cgroup_id", "cgroup_path", "pid", "exe", "uid", "unit", "pod", "container_id")
	requireKeys(t, "empty pod", object(t, "workload.pod", w["pod"]), "uid", "namespace", "name", "service_account")

	// A reject of unknown origin has no workload at all.
	m = marshalToMap(t, intercept.Event{Event: intercept.EventReject, Error: "no record"})
	if _, ok := m["workload"]; ok {
		t.Errorf("reject without workload marshals workload: %v", m["workload"])
	}
	if m["error"] != "no record" {
		t.Errorf("error = %v", m["error"])
	}

	// A zero duration is still a duration.
	zero := 0.0
	m = marshalToMap(t, intercept.Event{Event: intercept.EventClose, DurationMS: &zero})
	if v, ok := m["duration_ms"]; !ok || v != 0.0 {
		t.Errorf("duration_ms = %v, %v; want 0 present", v, ok)
	}
}

func TestEventKinds(t *testing.T) {
	if intercept.EventOpen != "open" || intercept.EventClose != "close" || intercept.EventReject != "reject" || intercept.EventDeny != "deny" {
		t.Errorf("event kinds = %q %q %q %q", intercept.EventOpen, intercept.EventClose, intercept.EventReject, intercept.EventDeny)
	}
}

// Statement events are encoded by hand on the data path; the bytes must be
// json.Marshal's, since the audit log's readers and its field contract
// (above) are json.Marshal's.
func TestEventAppendJSONAsMarshal(t *testing.T) {
	at := time.Date(2026, 11, 26, 15, 4, 5, 120000000, time.UTC)
	ms := 12.5
	tiny := 1e-7
	events := []intercept.Event{
		{Time: at, Event: intercept.EventStatement, SessionID: "s1", Target: "db", Protocol: "postgres", OrigDst: "10.0.0.5:5432", Client: "127.0.0.1:4000", Database: "orders\u2028", BytesUp: 10, BytesDown: 20,
			Statement: &intercept.StatementInfo{Text: "SELECT $1 FROM t WHERE a < $2 && b > 'x'", Operations: []string{"select"}, Decision: "allow", Rule: "r1", PolicyVersion: 4}},
		{Time: at, Event: intercept.EventStatement, Statement: &intercept.StatementInfo{Text: "DROP TABLE \"t\"\n", Decision: "deny", Reason: "drop is denied \u2028", Request: "req"}},
		{Time: at, Event: intercept.EventStatement, Statement: &intercept.StatementInfo{Operations: []string{}}},
		{Time: at, Event: intercept.EventClose, DurationMS: &ms, Error: "bad \xff byte", Decision: "allow", Reason: "r", Rule: "x", PolicyVersion: 1},
		{Time: at, Event: intercept.EventClose, DurationMS: &tiny},
		{},
	}
	for i, e := range events {
		want, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := e.AppendJSON([]byte("x"))
		if !ok || string(got) != "x"+string(want) {
			t.Errorf("event %d:\n got %s (%v)\nwant x%s", i, got, ok, want)
		}
	}
	// Events carrying an identity or an approval are json.Marshal's; the
	// buffer is handed back untouched.
	for _, e := range []intercept.Event{
		{Time: at, Event: intercept.EventOpen, Workload: &intercept.Identity{}},
		{Time: at, Event: intercept.EventApproval, Approval: &intercept.ApprovalInfo{Request: "r"}},
		{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), Event: intercept.EventStatement},
	} {
		if got, ok := e.AppendJSON([]byte("x")); ok || string(got) != "x" {
			t.Errorf("%+v: AppendJSON = %q, %v; want it left to json.Marshal", e, got, ok)
		}
	}
}

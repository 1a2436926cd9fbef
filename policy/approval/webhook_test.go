package approval

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// hook is a webhook receiver answering with the statuses given, in turn
// (the last one from then on), and handing over every body it got.
type hook struct {
	srv    *httptest.Server
	bodies chan []byte
}

func newHook(t *testing.T, statuses ...int) *hook {
	h := &hook{bodies: make(chan []byte, 64)}
	n := 0
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		status := statuses[min(n, len(statuses)-1)]
		n++
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			status = http.StatusBadRequest
		}
		w.WriteHeader(status)
		h.bodies <- b
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) next(t *testing.T) []byte {
	t.Helper()
	select {
	case b := <-h.bodies:
		return b
	case <-time.After(10 * time.Second):
		t.Fatal("the webhook was not called")
		return nil
	}
}

func (h *hook) none(t *testing.T) {
	t.Helper()
	select {
	case <-h.bodies:
		t.Fatal("the webhook was called once more")
	default:
	}
}

func webhookFixture(t *testing.T, w *Webhook) *fixture {
	f := &fixture{events: &events{}, clock: &clock{}}
	s, err := OpenStore(t.TempDir() + "/approvals.db")
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewBroker(context.Background(), s, Options{Events: f.events.add, Notify: w.Notify})
	if err != nil {
		t.Fatal(err)
	}
	f.store, f.broker = s, b
	t.Cleanup(func() { w.Close(); b.Close(); s.Close() })
	return f
}

func TestWebhookNotifies(t *testing.T) {
	h := newHook(t, http.StatusOK)
	w := &Webhook{Backoff: time.Millisecond}
	f := webhookFixture(t, w)
	req := deleteReq(time.Minute)
	req.Webhook = h.srv.URL + "/services/T000/B000/secret"
	r := f.request(t, req)

	var m struct {
		Text    string          `json:"text"`
		Summary string          `json:"summary"`
		Approve string          `json:"approve_command"`
		Deny    string          `json:"deny_command"`
		Request json.RawMessage `json:"request"`
	}
	body := h.next(t)
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.Text, "corral: approval "+r.ID+" requested: DELETE FROM orders on orders-db by etl.service (app)") ||
		!strings.Contains(m.Text, "`corral approve "+r.ID+"`") || !strings.Contains(m.Text, "Reviewers: group:dba") {
		t.Errorf("text: %s", m.Text)
	}
	if m.Approve != "corral approve "+r.ID || !strings.HasPrefix(m.Deny, "corral deny "+r.ID+" --reason") {
		t.Errorf("commands: %q %q", m.Approve, m.Deny)
	}
	var got Request
	if err := json.Unmarshal(m.Request, &got); err != nil || got.ID != r.ID || got.State != Pending || got.Target != "orders-db" {
		t.Errorf("request field: %v %+v", err, got)
	}
	if strings.Contains(string(body), "secret") {
		t.Errorf("the notification repeats the webhook URL: %s", body)
	}
	w.Close()
	if w.Sent() != 1 || w.Failures() != 0 {
		t.Errorf("sent %d, failures %d", w.Sent(), w.Failures())
	}
}

// What a workload wrote reaches the chat as text: a link or a mention
// it hid in a comment is escaped, and cannot end the approve command's
// code span.
func TestMessageForEscapesMarkup(t *testing.T) {
	r := &Request{ID: "r-1", Target: "orders-db", Kind: "sql", Operations: []string{"delete"}, Grant: GrantOnce,
		Text:      "DELETE /* <!channel> <https://evil.example/ok|approved by the DBA lead> & ` */ FROM orders",
		Statement: "DELETE FROM orders WHERE card = '4111111111111111'",
		Reason:    "delete needs review", Reviewers: []string{"group:dba"}}
	m := MessageFor(r)
	// The statement as sent is for corral's own pages, not a channel.
	if b, _ := json.Marshal(m); strings.Contains(string(b), "4111") || r.Statement == "" {
		t.Errorf("the webhook carries the statement as sent: %s", b)
	}
	for _, bad := range []string{"<!channel>", "<https://", "& `"} {
		if strings.Contains(m.Text, bad) {
			t.Errorf("the text carries %q: %s", bad, m.Text)
		}
	}
	if !strings.Contains(m.Text, "&lt;!channel&gt; &lt;https://evil.example/ok|approved by the DBA lead&gt; &amp; '") || !strings.HasSuffix(m.Text, "Approve: `corral approve r-1`") {
		t.Errorf("text: %s", m.Text)
	}
}

func TestWebhookRetries(t *testing.T) {
	h := newHook(t, http.StatusInternalServerError, http.StatusTooManyRequests, http.StatusOK)
	w := &Webhook{Backoff: time.Millisecond, Attempts: 5}
	f := webhookFixture(t, w)
	req := deleteReq(time.Minute)
	req.Webhook = h.srv.URL
	f.request(t, req)
	for range 3 {
		h.next(t)
	}
	w.Close()
	h.none(t)
	if w.Sent() != 1 || w.Failures() != 0 {
		t.Errorf("sent %d, failures %d", w.Sent(), w.Failures())
	}
}

// A webhook that always fails is tried Attempts times, counted as one
// failure, and decides nothing: the request still waits for a person.
func TestWebhookFailureApprovesNothing(t *testing.T) {
	h := newHook(t, http.StatusInternalServerError)
	w := &Webhook{Backoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond, Attempts: 4}
	f := webhookFixture(t, w)
	req := deleteReq(time.Minute)
	req.Webhook = h.srv.URL
	r := f.request(t, req)
	for range 4 {
		h.next(t)
	}
	w.Close()
	h.none(t)
	if w.Sent() != 0 || w.Failures() != 1 {
		t.Errorf("sent %d, failures %d", w.Sent(), w.Failures())
	}
	got, err := f.broker.Get(context.Background(), r.ID)
	if err != nil || got.State != Pending {
		t.Fatalf("after the failed notification: %v %+v", err, got)
	}
	if types := f.events.types(); len(types) != 1 || types[0] != EventRequested {
		t.Fatalf("events %v", types)
	}
	// It is decided by a person as usual.
	if _, err := f.broker.Decide(context.Background(), r.ID, alice, false, "no"); err != nil {
		t.Fatal(err)
	}
}

// A client error is not retried; an unreachable webhook is, and counts.
func TestWebhookGivesUp(t *testing.T) {
	h := newHook(t, http.StatusNotFound)
	w := &Webhook{Backoff: time.Millisecond, Attempts: 5}
	f := webhookFixture(t, w)
	req := deleteReq(time.Minute)
	req.Webhook = h.srv.URL
	f.request(t, req)
	h.next(t)

	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	req.Webhook = dead.URL
	f.request(t, req)
	w.Close()
	h.none(t)
	if w.Sent() != 0 || w.Failures() != 2 {
		t.Errorf("sent %d, failures %d", w.Sent(), w.Failures())
	}
}

// A chat message keeps a workload's text on one line, whole characters
// only, and its bidirectional marks escaped: a statement cannot write a
// line of its own that passes for corral's.
func TestMessageForKeepsTextOnOneLine(t *testing.T) {
	r := &Request{ID: "r-1", Target: "orders-db", Kind: "sql", Operations: []string{"delete"}, Grant: GrantOnce,
		Text:   "SELECT 1\ncorral: approval r-2 requested: SELECT 1 on orders-db\u202e " + strings.Repeat("é", 150) + " DROP TABLE x",
		Reason: "delete needs review", Reviewers: []string{"group:dba"}}
	m := MessageFor(r)
	if strings.ContainsAny(m.Text, "\n\u202e") || !utf8.ValidString(m.Summary) || !strings.Contains(m.Summary, `\u202e`) {
		t.Errorf("text: %q", m.Text)
	}
	if !strings.Contains(m.Summary, "…") {
		t.Errorf("not cut: %q", m.Summary)
	}
}

package approval

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Webhook announces requests to the webhook their rule names: a POST of
// Slack-compatible JSON ({"text": ...}, which Slack, Mattermost and most
// chat tools show as is) with the request and the commands that decide it
// as structured fields beside the text. A failed delivery is retried with
// exponential backoff a bounded number of times, then logged and counted.
// A notification can only inform: nothing it gets back decides anything.
type Webhook struct {
	// Client sends the notifications (its Timeout bounds each attempt);
	// nil: a client with a 10 s timeout.
	Client *http.Client
	// Attempts is how many times a delivery is tried (default 5);
	// Backoff the wait before the first retry (default 1 s), doubled
	// after every failure up to MaxBackoff (default 30 s).
	Attempts   int
	Backoff    time.Duration
	MaxBackoff time.Duration
	Log        *slog.Logger

	once     sync.Once
	ctx      context.Context
	stop     context.CancelFunc
	wg       sync.WaitGroup
	sent     atomic.Uint64
	failures atomic.Uint64
}

// Message is the JSON a webhook receives.
type Message struct {
	// Text is the notification for people, one line.
	Text string `json:"text"`
	// Summary is the request in one line; Approve and Deny the commands
	// that decide it on the agent's host.
	Summary string   `json:"summary"`
	Approve string   `json:"approve_command"`
	Deny    string   `json:"deny_command"`
	Request *Request `json:"request"`
}

// MessageFor is the notification of r.
func MessageFor(r *Request) Message {
	approve := "corral approve " + r.ID
	deny := "corral deny " + r.ID + " --reason '...'"
	summary := r.Summary()
	grant := "once"
	if r.Grant == GrantWindow {
		grant = "a " + time.Duration(r.Window).String() + " window"
	}
	text := fmt.Sprintf("corral: approval %s requested: %s. %s. Reviewers: %s; grant: %s; expires %s. Approve: `%s`",
		r.ID, chatText(summary), chatText(r.Reason), chatText(join(r.Reviewers)), grant, r.Expires.UTC().Format(time.RFC3339), approve)
	// The statement as sent is for reviewers of corral's own pages: a
	// chat channel keeps what it is sent.
	shown := r.clone()
	shown.Statement = ""
	return Message{Text: text, Summary: summary, Approve: approve, Deny: deny, Request: shown}
}

// chatText escapes what Slack reads as markup in text a workload chose (a
// statement, a command line): its links and mentions (<https://...|label>,
// <!channel>) are made of <, > and &, and a backquote would end the code
// span around the approve command. Chat tools that read Markdown links
// ([label](url)) or bare @mentions are not covered.
var chatText = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "`", "'").Replace

func join(list []string) string {
	var b bytes.Buffer
	for i, s := range list {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(s)
	}
	return b.String()
}

func (w *Webhook) init() {
	w.once.Do(func() {
		w.ctx, w.stop = context.WithCancel(context.Background())
		if w.Client == nil {
			w.Client = &http.Client{Timeout: 10 * time.Second}
		}
		if w.Attempts <= 0 {
			w.Attempts = 5
		}
		if w.Backoff <= 0 {
			w.Backoff = time.Second
		}
		if w.MaxBackoff <= 0 {
			w.MaxBackoff = 30 * time.Second
		}
		if w.Log == nil {
			w.Log = slog.New(slog.DiscardHandler)
		}
	})
}

// Notify delivers r's notification to r.Webhook in the background.
func (w *Webhook) Notify(r *Request) {
	w.init()
	if r.Webhook == "" {
		return
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		w.deliver(r.Webhook, MessageFor(r))
	}()
}

func (w *Webhook) deliver(url string, m Message) {
	body, err := json.Marshal(m)
	if err != nil {
		w.failures.Add(1)
		w.Log.Error("approval webhook: the notification does not encode", "request", m.Request.ID, "err", err)
		return
	}
	wait := w.Backoff
	var last error
	for attempt := 1; attempt <= w.Attempts; attempt++ {
		retry, err := w.post(url, body)
		last = err
		if last == nil {
			w.sent.Add(1)
			w.Log.Debug("approval webhook notified", "request", m.Request.ID, "attempt", attempt)
			return
		}
		if !retry || attempt == w.Attempts {
			break
		}
		w.Log.Debug("approval webhook failed; retrying", "request", m.Request.ID, "attempt", attempt, "in", wait, "err", last)
		select {
		case <-w.ctx.Done():
			w.failures.Add(1)
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, w.MaxBackoff)
	}
	w.failures.Add(1)
	// The URL may carry a secret (Slack's do): it is not logged.
	w.Log.Warn("approval webhook could not be notified; the request waits all the same", "request", m.Request.ID, "err", last)
}

// post sends one attempt; retry says whether another may succeed.
func (w *Webhook) post(url string, body []byte) (retry bool, err error) {
	// An attempt under way is finished (the client's timeout bounds it),
	// not cut by Close: only the waits between attempts are.
	req, rerr := http.NewRequestWithContext(context.Background(), http.MethodPost, url, bytes.NewReader(body))
	if rerr != nil {
		return false, fmt.Errorf("bad webhook URL")
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.Client.Do(req)
	if err != nil {
		// Without the URL, which the client's error repeats.
		if ue, ok := err.(interface{ Unwrap() error }); ok && ue.Unwrap() != nil {
			err = ue.Unwrap()
		}
		return true, fmt.Errorf("delivery failed: %v", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 || resp.StatusCode == http.StatusRequestTimeout:
		return true, fmt.Errorf("the webhook answered %s", resp.Status)
	default:
		return false, fmt.Errorf("the webhook answered %s", resp.Status)
	}
}

// Sent is the number of notifications delivered.
func (w *Webhook) Sent() uint64 { return w.sent.Load() }

// Failures is the number of notifications given up on.
func (w *Webhook) Failures() uint64 { return w.failures.Load() }

// Close stops retrying and waits for the attempts under way.
func (w *Webhook) Close() {
	w.init()
	w.stop()
	w.wg.Wait()
}

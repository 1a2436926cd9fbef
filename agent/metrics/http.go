package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Server serves the agent's metrics and health on one address:
//
//   - /metrics: the registry, in Prometheus' formats; a collector that
//     fails (the kernel's counters unreadable) is left out of the scrape
//     and logged, the rest is served;
//   - /healthz: 200 while the process serves HTTP at all;
//   - /readyz: 200 once the agent said it is ready (programs attached,
//     listeners up, policy loaded), 503 with the reason before that and
//     while it stops.
type Server struct {
	ln   net.Listener
	srv  *http.Server
	done chan struct{}

	mu     sync.Mutex
	reason string // why not ready; "" when ready
}

// Listen binds addr and starts serving g. The server starts not ready
// ("starting").
func Listen(addr string, g prometheus.Gatherer, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{ln: ln, done: make(chan struct{}), reason: "starting"}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:      promLog{log},
		ErrorHandling: promhttp.ContinueOnError,
		Timeout:       10 * time.Second,
	}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", s.readyz)
	s.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics endpoint stopped", "address", addr, "err", err)
		}
	}()
	return s, nil
}

// Addr is where the server listens.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// SetReady makes /readyz answer 200.
func (s *Server) SetReady() { s.setReason("") }

// SetNotReady makes /readyz answer 503 with reason.
func (s *Server) SetNotReady(reason string) {
	if reason == "" {
		reason = "not ready"
	}
	s.setReason(reason)
}

func (s *Server) setReason(r string) {
	s.mu.Lock()
	s.reason = r
	s.mu.Unlock()
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	reason := s.reason
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if reason != "" {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, reason)
		return
	}
	fmt.Fprintln(w, "ready")
}

// Close stops the server: requests in flight may finish until ctx ends.
func (s *Server) Close(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	<-s.done
	return err
}

// promLog passes promhttp's complaints (a collector that failed) to the
// agent's log.
type promLog struct{ log *slog.Logger }

func (l promLog) Println(v ...any) { l.log.Warn("metrics: " + fmt.Sprint(v...)) }

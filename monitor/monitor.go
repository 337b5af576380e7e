package monitor

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config says where to serve.
type Config struct {
	Addr string // host:port; empty disables the server
}

// RegisterFlags registers the monitor flag on fs with the given default.
func (c *Config) RegisterFlags(fs *flag.FlagSet, def string) {
	c.Addr = def
	fs.StringVar(&c.Addr, "monitor-addr", def, "address of the /metrics, /healthz and /readyz endpoints (empty: off)")
}

// Validate names the first bad field.
func (c *Config) Validate() error {
	if c.Addr == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("monitor-addr: %q is not host:port", c.Addr)
	}
	return nil
}

// Check reports whether one part of the process is ready; nil means ready.
type Check func(ctx context.Context) error

// Monitor holds a process's metrics registry and readiness checks.
type Monitor struct {
	Registry *prometheus.Registry

	mu     sync.Mutex
	checks map[string]Check
}

// New returns a monitor with a fresh registry that already holds the Go
// runtime and process collectors.
func New() *Monitor {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Monitor{Registry: reg, checks: map[string]Check{}}
}

// AddCheck adds (or replaces) a named readiness check.
func (m *Monitor) AddCheck(name string, c Check) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.checks[name] = c
}

// Handler returns the HTTP handler of the three endpoints.
func (m *Monitor) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if err := m.ready(ctx); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return mux
}

func (m *Monitor) ready(ctx context.Context) error {
	m.mu.Lock()
	names := make([]string, 0, len(m.checks))
	for n := range m.checks {
		names = append(names, n)
	}
	checks := make(map[string]Check, len(m.checks))
	for n, c := range m.checks {
		checks[n] = c
	}
	m.mu.Unlock()
	sort.Strings(names)
	for _, n := range names {
		if err := checks[n](ctx); err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
	}
	return nil
}

// Serve serves the endpoints on cfg.Addr until ctx is cancelled. With an
// empty address it returns nil at once. A listen error is returned at once.
func (m *Monitor) Serve(ctx context.Context, cfg Config, log *slog.Logger) error {
	if cfg.Addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("monitor: listening on %s: %w", cfg.Addr, err)
	}
	srv := &http.Server{Handler: m.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("monitor endpoints", "addr", ln.Addr().String())
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("monitor server stopped", "err", err)
		}
	}()
	return nil
}

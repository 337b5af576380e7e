package target

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Config says how to reach the target database.
type Config struct {
	URL            string
	MaxConns       int
	ConnectTimeout time.Duration
}

// DefaultConfig returns the defaults; PG_URL overrides the URL.
func DefaultConfig() Config {
	url := os.Getenv("PG_URL")
	if url == "" {
		url = "postgres://postgres@localhost:5432/postgres"
	}
	return Config{URL: url, MaxConns: 16, ConnectTimeout: 10 * time.Second}
}

// RegisterFlags registers the target flags on fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.URL, "pg-url", c.URL, "target PostgreSQL URL (env PG_URL)")
	fs.IntVar(&c.MaxConns, "pg-max-conns", c.MaxConns, "largest number of target connections")
	fs.DurationVar(&c.ConnectTimeout, "pg-timeout", c.ConnectTimeout, "how long to wait for PostgreSQL to answer when connecting")
}

// Validate names the first bad field.
func (c *Config) Validate() error {
	if _, err := c.poolConfig(); err != nil {
		return err
	}
	if c.MaxConns < 1 {
		return fmt.Errorf("pg-max-conns: %d, want at least 1", c.MaxConns)
	}
	return nil
}

func (c *Config) poolConfig() (*pgxpool.Config, error) {
	pc, err := pgxpool.ParseConfig(c.URL)
	if err != nil {
		// pgx already masks the password in its parse errors.
		return nil, fmt.Errorf("pg-url: %w", err)
	}
	pc.MaxConns = int32(c.MaxConns)
	pc.ConnConfig.ConnectTimeout = c.ConnectTimeout
	return pc, nil
}

// Address returns host:port/database, safe to log.
func (c *Config) Address() string {
	pc, err := pgxpool.ParseConfig(c.URL)
	if err != nil {
		return "(unparsable URL)"
	}
	cc := pc.ConnConfig
	return fmt.Sprintf("%s:%d/%s", cc.Host, cc.Port, cc.Database)
}

// Connect opens a pool and checks that the database answers.
func Connect(ctx context.Context, cfg Config) (*pgxpool.Pool, error) {
	pc, err := cfg.poolConfig()
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("connecting to PostgreSQL at %s: %w", cfg.Address(), err)
	}
	pctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to PostgreSQL at %s: %s", cfg.Address(), strings.ReplaceAll(err.Error(), cfg.URL, "<url>"))
	}
	return pool, nil
}

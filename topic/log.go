package topic

import (
	"context"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"
)

// kafkaLogger passes the Kafka client's log lines to slog one step quieter:
// the client's info lines (metadata refreshes, producer ids, group joins) are
// debug lines for docshift's users; its warnings and errors stay what they
// are.
type kafkaLogger struct{ sl *slog.Logger }

func (l kafkaLogger) Level() kgo.LogLevel {
	ctx := context.Background()
	switch {
	case l.sl.Enabled(ctx, slog.LevelDebug):
		return kgo.LogLevelInfo
	case l.sl.Enabled(ctx, slog.LevelWarn):
		return kgo.LogLevelWarn
	case l.sl.Enabled(ctx, slog.LevelError):
		return kgo.LogLevelError
	}
	return kgo.LogLevelNone
}

func (l kafkaLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	sl := slog.LevelDebug
	switch level {
	case kgo.LogLevelError:
		sl = slog.LevelError
	case kgo.LogLevelWarn:
		sl = slog.LevelWarn
	}
	l.sl.Log(context.Background(), sl, msg, append(keyvals, "component", "kafka")...)
}

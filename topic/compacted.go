package topic

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// NewLogReader returns a client that reads the one partition of a compacted
// topic docshift keeps its own records in (snapshot state, stream
// checkpoints) from its start: committed records only, and transaction
// markers too, so that its position reaches the end of the log even when
// the log ends with a marker.
func NewLogReader(ctx context.Context, cfg Config, name string, log *slog.Logger) (*kgo.Client, error) {
	return NewClient(ctx, cfg, log,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{name: {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
}

// CommittedEnd returns the offset after the last committed record of the
// one partition of name: a log reader has read everything committed before
// the call once its position reaches it. A transaction counts from its
// marker: a commit that returned a moment before the call may not count yet
// (the broker writes the marker after it answers the commit).
func CommittedEnd(ctx context.Context, cl *kgo.Client, name string) (int64, error) {
	ends, err := kadm.NewClient(cl).ListCommittedOffsets(ctx, name)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return 0, fmt.Errorf("reading the end of %s: %w", name, err)
	}
	end, _ := ends.Lookup(name, 0)
	return end.Offset, nil
}

// ReadLog reads the one partition of a compacted topic (see NewLogReader)
// up to its committed end, calling apply with every record that is not a
// transaction marker, in order. It stops at the first error apply returns,
// naming the record's offset.
func ReadLog(ctx context.Context, cfg Config, name string, log *slog.Logger, apply func(*kgo.Record) error) error {
	cl, err := NewLogReader(ctx, cfg, name, log)
	if err != nil {
		return err
	}
	defer cl.Close()
	end, err := CommittedEnd(ctx, cl, name)
	if err != nil {
		return err
	}
	for next := int64(0); next < end; {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		ferr := FetchErr(fs, log)
		fs.EachRecord(func(r *kgo.Record) {
			if ferr != nil {
				return
			}
			next = r.Offset + 1
			if !r.Attrs.IsControl() {
				if err := apply(r); err != nil {
					ferr = fmt.Errorf("%s offset %d: %w", name, r.Offset, err)
				}
			}
		})
		if ferr != nil {
			return ferr
		}
	}
	return nil
}

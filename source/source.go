package source

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"
)

// Config says how to reach MongoDB.
type Config struct {
	URI            string
	ConnectTimeout time.Duration
}

// DefaultConfig returns the defaults; MONGO_URI overrides the URI.
func DefaultConfig() Config {
	uri := os.Getenv("MONGO_URI")
	if uri == "" {
		uri = "mongodb://localhost:27017"
	}
	return Config{URI: uri, ConnectTimeout: 10 * time.Second}
}

// RegisterFlags registers the MongoDB flags on fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.URI, "mongo-uri", c.URI, "MongoDB connection URI (env MONGO_URI)")
	fs.DurationVar(&c.ConnectTimeout, "mongo-timeout", c.ConnectTimeout, "how long to wait for MongoDB to answer when connecting")
}

// Validate names the first bad field.
func (c *Config) Validate() error {
	if _, err := connstring.ParseAndValidate(c.URI); err != nil {
		return fmt.Errorf("mongo-uri: %s", scrub(err.Error(), c.URI))
	}
	return nil
}

// Hosts returns the URI's hosts, which are safe to log.
func (c *Config) Hosts() string {
	cs, err := connstring.Parse(c.URI)
	if err != nil {
		return "(unparsable URI)"
	}
	return strings.Join(cs.Hosts, ",")
}

// scrub removes the URI (and so any password in it) from a message.
func scrub(msg, uri string) string {
	if uri != "" {
		msg = strings.ReplaceAll(msg, uri, "<uri>")
	}
	return msg
}

// Connect opens a client and pings the deployment.
func Connect(ctx context.Context, cfg Config) (*mongo.Client, error) {
	opts := options.Client().ApplyURI(cfg.URI).
		SetServerSelectionTimeout(cfg.ConnectTimeout).
		SetConnectTimeout(cfg.ConnectTimeout).
		SetAppName("docshift")
	cl, err := mongo.Connect(opts)
	if err != nil {
		return nil, fmt.Errorf("connecting to MongoDB at %s: %s", cfg.Hosts(), scrub(err.Error(), cfg.URI))
	}
	pctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	if err := cl.Ping(pctx, nil); err != nil {
		_ = cl.Disconnect(context.Background())
		return nil, fmt.Errorf("connecting to MongoDB at %s: %s", cfg.Hosts(), scrub(err.Error(), cfg.URI))
	}
	return cl, nil
}

// ClusterTime returns the deployment's current time, for the version of a
// snapshot chunk's rows and the start of a change stream: the operationTime
// of a command reply (the primary's last applied write), else its
// $clusterTime, on a replica set or sharded cluster. operationTime comes
// first because it is never later: $clusterTime also counts the timestamps
// of writes still committing, which a read that starts now may not see yet,
// and a row versioned after such a write would hide that write's change
// from the sink; an earlier time only has changes applied twice. A server
// that reports neither (a standalone) gets the wall clock's second with
// increment 0, which is not later than any change the server makes
// afterwards as long as its clock agrees with ours.
func ClusterTime(ctx context.Context, cl *mongo.Client) (bson.Timestamp, error) {
	before := time.Now()
	reply, err := cl.Database("admin").RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Raw()
	if err != nil {
		return bson.Timestamp{}, fmt.Errorf("reading cluster time: %w", err)
	}
	if ts, ok := replyTime(reply); ok {
		return ts, nil
	}
	return bson.Timestamp{T: uint32(before.Unix())}, nil
}

// replyTime is a command reply's operationTime, else its $clusterTime.
func replyTime(reply bson.Raw) (bson.Timestamp, bool) {
	for _, path := range [][]string{{"operationTime"}, {"$clusterTime", "clusterTime"}} {
		if v, err := reply.LookupErr(path...); err == nil {
			if t, i, ok := v.TimestampOK(); ok {
				return bson.Timestamp{T: t, I: i}, true
			}
		}
	}
	return bson.Timestamp{}, false
}

// ClusterTimeAfter returns a cluster time no earlier than the moment after:
// on a deployment that reports cluster times, the current one; on one that
// does not, the wall-clock second is taken once it has passed after, so
// that what was done before after (enabling pre-images, say) precedes it.
func ClusterTimeAfter(ctx context.Context, cl *mongo.Client, after time.Time) (bson.Timestamp, error) {
	for {
		ts, err := ClusterTime(ctx, cl)
		if err != nil || ts.I != 0 || int64(ts.T) > after.Unix() {
			return ts, err
		}
		select {
		case <-time.After(time.Until(time.Unix(after.Unix()+1, 0))):
		case <-ctx.Done():
			return bson.Timestamp{}, ctx.Err()
		}
	}
}

// After returns where a change stream starts to follow only what happens
// after ts: a reported cluster time is the last operation's, which the
// stream (startAtOperationTime is inclusive) need not replay; a wall-clock
// second (increment 0) precedes every operation in it.
func After(ts bson.Timestamp) bson.Timestamp {
	if ts.I != 0 {
		ts.I++
	}
	return ts
}

// MongoDB's code for a namespace that does not exist.
const codeNamespaceNotFound = 26

// EnablePreImages turns on change-stream pre-images for a collection
// (MongoDB 6.0+, collMod privilege), creating the collection with them if it
// does not exist yet. A delete event names its document by _id only; its
// pre-image tells the document's tenant. It is idempotent.
func EnablePreImages(ctx context.Context, cl *mongo.Client, database, collection string) error {
	on := bson.D{{Key: "enabled", Value: true}}
	db := cl.Database(database)
	err := db.RunCommand(ctx, bson.D{{Key: "collMod", Value: collection}, {Key: "changeStreamPreAndPostImages", Value: on}}).Err()
	var se mongo.ServerError
	if errors.As(err, &se) && se.HasErrorCode(codeNamespaceNotFound) {
		err = db.RunCommand(ctx, bson.D{{Key: "create", Value: collection}, {Key: "changeStreamPreAndPostImages", Value: on}}).Err()
	}
	if err != nil {
		return fmt.Errorf("enabling pre-images on %s.%s: %w", database, collection, err)
	}
	return nil
}

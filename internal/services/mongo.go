package services

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/docshift/docshift/source"
)

// PrivateMongo is a test server of a test's own, started with launcher
// flags the shared one does not have (see testenv/mongo's Launcher).
type PrivateMongo struct {
	URI    string // mongodb://127.0.0.1:<port>/?directConnection=true
	Client *mongo.Client
	log    SyncBuffer
}

// Log returns what the server has written to its standard error so far.
func (m *PrivateMongo) Log() string { return m.log.String() }

// StartMongo starts a test server of the test's own with the given launcher
// flags, on a free port, and connects to it; the test's cleanup stops it.
// Like every integration test it needs the services `make test` starts
// (their start builds the launcher); without MONGO_URI the test is skipped.
func StartMongo(t testing.TB, flags ...string) *PrivateMongo {
	t.Helper()
	require(t, "MONGO_URI")
	_, file, _, _ := runtime.Caller(0)
	build := filepath.Join(filepath.Dir(file), "..", "..", ".cache", "mongo")
	jar := filepath.Join(build, "build", "launcher.jar")
	if _, err := os.Stat(jar); err != nil {
		t.Fatalf("MONGO_URI is set but the test server's launcher is not built (scripts/services.sh up builds it): %v", err)
	}
	java := "java"
	if home := os.Getenv("JAVA_HOME"); home != "" {
		java = filepath.Join(home, "bin", "java")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()

	m := &PrivateMongo{URI: fmt.Sprintf("mongodb://127.0.0.1:%d/?directConnection=true", port)}
	args := append([]string{"-Xmx256m", "-cp", jar + string(os.PathListSeparator) + filepath.Join(build, "libs", "*"),
		"io.docshift.testenv.mongo.Launcher", "--host", "127.0.0.1", "--port", fmt.Sprint(port)}, flags...)
	cmd := exec.Command(java, args...)
	cmd.Stderr = &m.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting a test server: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	cfg := source.DefaultConfig()
	cfg.URI = m.URI
	cfg.ConnectTimeout = 30 * time.Second
	if m.Client, err = source.Connect(context.Background(), cfg); err != nil {
		t.Fatalf("the test server started with %v does not answer: %v\n%s", flags, err, m.Log())
	}
	t.Cleanup(func() { _ = m.Client.Disconnect(context.Background()) })
	return m
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers (a child
// process's output copier, a log's goroutines) and the test reading it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

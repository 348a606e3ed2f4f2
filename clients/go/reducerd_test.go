package purereducer_test

// Starts live reducerd servers for the tests: the binary is REDUCERD_BIN, or the repository's
// target/debug/reducerd, built beforehand by cargo. A test that needs a server and cannot have
// one fails, saying why; none is skipped.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	purereducer "purereducer.dev/clients/go"
)

// reducerd is one reducerd process with its own SQLite file in its own directory.
type reducerd struct {
	// addr is the gRPC host:port the server bound (it listens on port 0, so never taken).
	addr string
	cmd  *exec.Cmd
	dir  string
	// log holds every line the server printed, for a failure to show.
	log *lineLog
}

// shared is the server most tests use, started by TestMain; sharedErr says why there is none.
var (
	shared    *reducerd
	sharedErr error
)

func TestMain(m *testing.M) {
	shared, sharedErr = startReducerd()
	if sharedErr != nil {
		fmt.Fprintf(os.Stderr, "purereducer tests: %v\n", sharedErr)
	}
	code := m.Run()
	if shared != nil {
		shared.stop()
	}
	os.Exit(code)
}

// live is a client of the shared server; the test fails when TestMain could not start it.
func live(t *testing.T) *purereducer.Client {
	t.Helper()
	if sharedErr != nil {
		t.Fatalf("no live reducerd: %v", sharedErr)
	}
	return dial(t, shared.addr)
}

// fresh is a client of a server of the test's own, for a test that needs an empty database.
func fresh(t *testing.T) *purereducer.Client {
	t.Helper()
	srv, err := startReducerd()
	if err != nil {
		t.Fatalf("no live reducerd: %v", err)
	}
	t.Cleanup(srv.stop)
	return dial(t, srv.addr)
}

func dial(t *testing.T, addr string) *purereducer.Client {
	t.Helper()
	client, err := purereducer.Dial(addr, purereducer.Options{})
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}

// reducerdBin is the binary to run: REDUCERD_BIN, or target/debug/reducerd of the repository
// this package sits in (tests run in the package directory, clients/go).
func reducerdBin() (string, error) {
	bin := os.Getenv("REDUCERD_BIN")
	if bin == "" {
		bin = filepath.Join("..", "..", "target", "debug", "reducerd")
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		return "", err
	}
	info, err := os.Stat(abs)
	if err != nil || info.IsDir() || info.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%s is missing or not executable: build it first (cargo build -p reducerd) "+
			"or point REDUCERD_BIN at a reducerd binary", abs)
	}
	return abs, nil
}

// startReducerd runs reducerd on free ports with an SQLite database in a new temporary
// directory, and returns once it logs the address it serves gRPC on (within 30 s).
func startReducerd() (*reducerd, error) {
	bin, err := reducerdBin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "reducerd-go-")
	if err != nil {
		return nil, err
	}
	out, in, err := os.Pipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cmd := exec.Command(bin, "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
		"--database-url", "sqlite://"+filepath.Join(dir, "t.db"))
	cmd.Stdout, cmd.Stderr = in, in
	err = cmd.Start()
	in.Close()
	if err != nil {
		out.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	srv := &reducerd{cmd: cmd, dir: dir, log: &lineLog{}}
	addrs := make(chan string, 1)
	go srv.read(out, addrs)
	select {
	case addr, ok := <-addrs:
		if ok {
			srv.addr = addr
			return srv, nil
		}
		srv.stop()
		return nil, fmt.Errorf("reducerd exited before serving:\n%s", srv.log)
	case <-time.After(30 * time.Second):
		srv.stop()
		return nil, fmt.Errorf("reducerd did not start within 30 s:\n%s", srv.log)
	}
}

// read keeps every line of the server's output, sends the address of its "reducerd serving
// gRPC ... addr=HOST:PORT" line on addrs, and closes addrs when the output ends. It reads to
// the end so that the server never blocks on a full pipe.
func (r *reducerd) read(out *os.File, addrs chan<- string) {
	defer out.Close()
	defer close(addrs)
	sent := false
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		line := lines.Text()
		r.log.add(line)
		if sent || !strings.Contains(line, "reducerd serving gRPC") {
			continue
		}
		for _, field := range strings.Fields(line) {
			if addr := strings.TrimPrefix(field, "addr="); addr != field {
				addrs <- addr
				sent = true
				break
			}
		}
	}
}

func (r *reducerd) stop() {
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	os.RemoveAll(r.dir)
}

// key is a workflow key unique to this run, since the tests share one server.
func key(name string) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return "go-" + name + "-" + hex.EncodeToString(b[:])
}

// timeout is the context of one test's calls.
func timeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// must fails the test on an error it did not expect.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// lineLog collects a server's output lines; read adds to it while a failure reads it.
type lineLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *lineLog) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

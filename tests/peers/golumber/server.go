package main

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	stdlog "log"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	lumberlog "github.com/elastic/go-lumber/log"
	"github.com/elastic/go-lumber/server"
)

// serverOpts holds the parsed server command line.
type serverOpts struct {
	listen      string
	tlsCert     string
	tlsKey      string
	tlsCA       string
	tlsMax      string
	tlsCiphers  string
	requireCert bool
	keepalive   time.Duration
	ackDelay    time.Duration
	timeout     time.Duration
	maxWindow   uint
	out         string
	expect      uint64
	stats       bool
	statsFile   string
	deadline    time.Duration
	verbose     bool
	raw         bool
	v1          bool
	faultSpec   string
	faultTimes  uint64
	restartGap  time.Duration

	fault fault
}

// faultKind enumerates the misbehaviours of the raw server.
type faultKind int

const (
	faultNone faultKind = iota
	faultCloseAfterEvents
	faultPartialAckThenClose
	faultKeepaliveOnly
	faultNeverAck
	faultGarbage
	faultRestartAfter
	faultPartialAckPipelined
	faultAckTooLarge
	faultPartialAckThenHold
)

type fault struct {
	kind faultKind
	n    uint64        // close-after-events / restart-after
	dur  time.Duration // keepalive-only
}

func parseFault(spec string) (fault, error) {
	name, arg, hasArg := strings.Cut(spec, "=")
	needN := func() (uint64, error) {
		if !hasArg {
			return 0, fmt.Errorf("--fault %s needs =N", name)
		}
		n, err := strconv.ParseUint(arg, 10, 64)
		if err != nil || n == 0 {
			return 0, fmt.Errorf("--fault %s: %q is not a positive event count", name, arg)
		}
		return n, nil
	}
	noArg := func(k faultKind) (fault, error) {
		if hasArg {
			return fault{}, fmt.Errorf("--fault %s takes no argument", name)
		}
		return fault{kind: k}, nil
	}
	switch name {
	case "", "none":
		return noArg(faultNone)
	case "close-after-events":
		n, err := needN()
		return fault{kind: faultCloseAfterEvents, n: n}, err
	case "restart-after":
		n, err := needN()
		return fault{kind: faultRestartAfter, n: n}, err
	case "partial-ack-then-close":
		return noArg(faultPartialAckThenClose)
	case "partial-ack-pipelined":
		return noArg(faultPartialAckPipelined)
	case "partial-ack-then-hold":
		return noArg(faultPartialAckThenHold)
	case "ack-too-large":
		return noArg(faultAckTooLarge)
	case "never-ack":
		return noArg(faultNeverAck)
	case "garbage":
		return noArg(faultGarbage)
	case "keepalive-only":
		if !hasArg {
			return fault{}, fmt.Errorf("--fault keepalive-only needs =DURATION")
		}
		d, err := time.ParseDuration(arg)
		if err != nil || d <= 0 {
			return fault{}, fmt.Errorf("--fault keepalive-only: %q is not a positive duration", arg)
		}
		return fault{kind: faultKeepaliveOnly, dur: d}, nil
	}
	return fault{}, fmt.Errorf("unknown --fault %q (none|close-after-events=N|partial-ack-then-close|partial-ack-pipelined|partial-ack-then-hold|ack-too-large|keepalive-only=D|never-ack|garbage|restart-after=N)", spec)
}

func runServer(args []string) int {
	var o serverOpts
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:0", "address to listen on; port 0 picks a free port (see the READY line)")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "server certificate (PEM); enables TLS")
	fs.StringVar(&o.tlsKey, "tls-key", "", "server private key (PEM)")
	fs.StringVar(&o.tlsCA, "tls-ca", "", "CA bundle (PEM) used to verify client certificates")
	fs.StringVar(&o.tlsMax, "tls-max-version", "", "highest TLS version offered: 1.2 or 1.3 (default: Go's)")
	fs.StringVar(&o.tlsCiphers, "tls-ciphers", "", "comma-separated Go names of the TLS 1.2 suites allowed (default: Go's)")
	fs.BoolVar(&o.requireCert, "require-client-cert", false, "reject clients without a certificate signed by --tls-ca")
	fs.DurationVar(&o.keepalive, "keepalive", 3*time.Second, "interval of ACK 0 keep-alives while a batch waits for its ACK (0 = none)")
	fs.DurationVar(&o.ackDelay, "ack-delay", 0, "hold every batch this long before ACKing it (slow consumer)")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "network timeout: a started window must be complete within it; ACK write deadline")
	fs.UintVar(&o.maxWindow, "max-window", 10000, "largest window (W) accepted; bigger ones close the connection")
	fs.StringVar(&o.out, "out", "", "append each accepted event's JSON as one NDJSON line to this file")
	fs.Uint64Var(&o.expect, "expect", 0, "exit 0 once this many distinct events (by \"seq\" when present) were accepted and ACKed")
	fs.BoolVar(&o.stats, "stats", false, "print one final JSON stats line on stderr")
	fs.StringVar(&o.statsFile, "stats-file", "", "write the final JSON stats line to this file (implies --stats)")
	fs.DurationVar(&o.deadline, "deadline", 0, "with --expect: give up and exit 1 after this long (0 = wait forever)")
	fs.BoolVar(&o.verbose, "verbose", false, "let go-lumber log to stderr")
	fs.BoolVar(&o.raw, "raw", false, "use the built-in raw v2 server even without a fault")
	fs.BoolVar(&o.v1, "v1", true, "go-lumber server: also accept protocol v1 connections (chosen by the first byte)")
	fs.StringVar(&o.faultSpec, "fault", "none", "none|close-after-events=N|partial-ack-then-close|partial-ack-pipelined|partial-ack-then-hold|ack-too-large|keepalive-only=D|never-ack|garbage|restart-after=N (all but none use the raw server)")
	fs.Uint64Var(&o.faultTimes, "fault-times", 1, "how many times the fault fires before the server behaves normally (0 = every time)")
	fs.DurationVar(&o.restartGap, "restart-gap", 500*time.Millisecond, "restart-after: how long the port stays closed")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "golumber server: unexpected arguments %q\n", fs.Args())
		return 2
	}
	f, err := parseFault(o.faultSpec)
	if err != nil {
		fmt.Fprintf(os.Stderr, "golumber server: %v\n", err)
		return 2
	}
	o.fault = f
	if o.statsFile != "" {
		o.stats = true
	}
	if f.kind == faultKeepaliveOnly && o.keepalive <= 0 {
		fmt.Fprintln(os.Stderr, "golumber server: --fault keepalive-only needs --keepalive > 0")
		return 2
	}
	if !o.verbose {
		lumberlog.Logger = stdlog.New(io.Discard, "", 0)
	}

	tlsCfg, err := serverTLS(o.tlsCert, o.tlsKey, o.tlsCA, o.requireCert)
	if err == nil && tlsCfg != nil {
		err = limitTLS(tlsCfg, o.tlsMax, o.tlsCiphers)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "golumber server: %v\n", err)
		return 2
	}
	rec, err := newRecorder(o.out, o.expect)
	if err != nil {
		fmt.Fprintf(os.Stderr, "golumber server: %v\n", err)
		return 2
	}

	tcp, err := net.Listen("tcp", o.listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "golumber server: listening on %s: %v\n", o.listen, err)
		return 2
	}
	kind := "go-lumber"
	if o.raw || f.kind != faultNone {
		kind = "raw"
	}

	done := make(chan int, 1)
	finish := func(code int) {
		select {
		case done <- code:
		default:
		}
	}

	var stop func()
	if kind == "go-lumber" {
		stop, err = startGoLumber(&o, tcp, tlsCfg, rec, finish)
	} else {
		stop, err = startRaw(&o, tcp, tlsCfg, rec, finish)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "golumber server: %v\n", err)
		return 2
	}
	// The one line tests wait for; everything else goes to stderr.
	fmt.Printf("READY %s\n", tcp.Addr().String())

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	var deadline <-chan time.Time
	if o.deadline > 0 {
		deadline = time.After(o.deadline)
	}
	code := 0
	select {
	case code = <-done:
	case s := <-sigs:
		if o.expect > 0 && !rec.expectReached() {
			fmt.Fprintf(os.Stderr, "golumber server: %v before --expect %d was reached\n", s, o.expect)
			code = 1
		}
	case <-deadline:
		fmt.Fprintf(os.Stderr, "golumber server: --deadline %v passed before --expect %d was reached\n", o.deadline, o.expect)
		code = 1
	}
	stop()
	if err := rec.close(); err != nil {
		fmt.Fprintf(os.Stderr, "golumber server: closing --out: %v\n", err)
		code = 1
	}
	if o.stats {
		line := append(rec.stats(kind, o.faultSpec), '\n')
		if o.statsFile != "" {
			if err := os.WriteFile(o.statsFile, line, 0o644); err != nil {
				fmt.Fprintf(os.Stderr, "golumber server: writing --stats-file: %v\n", err)
				code = 1
			}
		} else {
			os.Stderr.Write(line)
		}
	}
	return code
}

// trackedConn sits above TLS, so it counts plaintext Lumberjack bytes and can
// see the ACK frames go-lumber writes (one 6-byte Write each).
type trackedConn struct {
	net.Conn
	rec      *recorder
	acks     atomic.Uint64
	notify   chan struct{}
	closeOne sync.Once
	onClose  func()
}

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.rec.bytesIn.Add(uint64(n))
	return n, err
}

func (c *trackedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err == nil && n == 6 && p[1] == 'A' && (p[2]|p[3]|p[4]|p[5]) != 0 {
		c.acks.Add(1)
		select {
		case c.notify <- struct{}{}:
		default:
		}
	}
	return n, err
}

func (c *trackedConn) Close() error {
	c.closeOne.Do(c.onClose)
	return c.Conn.Close()
}

// trackingListener hands go-lumber tracked connections and remembers them by
// remote address, which is what go-lumber stores in every lj.Batch.
type trackingListener struct {
	net.Listener
	rec   *recorder
	mu    sync.Mutex
	conns map[string]*trackedConn
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.rec.connections.Add(1)
	addr := c.RemoteAddr().String()
	tc := &trackedConn{Conn: c, rec: l.rec, notify: make(chan struct{}, 1)}
	tc.onClose = func() {
		l.mu.Lock()
		if l.conns[addr] == tc {
			delete(l.conns, addr)
		}
		l.mu.Unlock()
	}
	l.mu.Lock()
	l.conns[addr] = tc
	l.mu.Unlock()
	return tc, nil
}

func (l *trackingListener) lookup(addr string) *trackedConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conns[addr]
}

// startGoLumber runs the real go-lumber server (v2, and v1 unless --v1=false);
// one consumer goroutine records, optionally delays and ACKs batches in order.
func startGoLumber(o *serverOpts, tcp net.Listener, tlsCfg *tls.Config, rec *recorder, finish func(int)) (func(), error) {
	var base net.Listener = tcp
	if tlsCfg != nil {
		base = tls.NewListener(tcp, tlsCfg)
	}
	tl := &trackingListener{Listener: base, rec: rec, conns: make(map[string]*trackedConn)}
	srv, err := server.NewWithListener(tl,
		server.V1(o.v1),
		server.V2(true),
		server.Keepalive(o.keepalive),
		server.Timeout(o.timeout),
		server.MaxWindowSize(uint32(o.maxWindow)),
		// Keep the exact bytes the client sent (go-lumber reuses its read
		// buffer, hence the copy); reject invalid JSON as go-lumber does.
		server.JSONDecoder(func(b []byte, v interface{}) error {
			if !json.Valid(b) {
				return errors.New("invalid JSON event")
			}
			p, ok := v.(*interface{})
			if !ok {
				return json.Unmarshal(b, v)
			}
			*p = json.RawMessage(append([]byte(nil), b...))
			return nil
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("starting go-lumber server: %w", err)
	}
	ackedPerConn := make(map[*trackedConn]uint64)
	consumerDone := make(chan struct{})
	go func() {
		defer close(consumerDone)
		events := make([][]byte, 0, 2048)
		for batch := range srv.ReceiveChan() {
			events = events[:0]
			for _, ev := range batch.Events {
				events = append(events, eventBytes(ev))
			}
			reached, err := rec.recordBatch(events)
			if err != nil {
				fmt.Fprintf(os.Stderr, "golumber server: %v\n", err)
				finish(1)
				return
			}
			if o.ackDelay > 0 {
				time.Sleep(o.ackDelay) // simulated slow pipeline, keep-alives flow meanwhile
			}
			conn := tl.lookup(batch.RemoteAddr)
			batch.ACK()
			if conn != nil {
				ackedPerConn[conn]++
			}
			if reached {
				// Exit only after the final ACK reached the socket, so the
				// client is not left retrying a window we already stored.
				if conn != nil {
					waitAcks(conn, ackedPerConn[conn], 5*time.Second)
				}
				finish(0)
			}
		}
	}()
	return func() {
		_ = srv.Close()
		<-consumerDone
	}, nil
}

func waitAcks(c *trackedConn, want uint64, limit time.Duration) {
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for c.acks.Load() < want {
		select {
		case <-c.notify:
		case <-timer.C:
			fmt.Fprintf(os.Stderr, "golumber server: final ACK not written within %v\n", limit)
			return
		}
	}
}

// eventBytes turns a go-lumber event back into JSON: v2 events arrive as the
// raw bytes kept by our decoder, v1 events as go-lumber's string map.
func eventBytes(ev interface{}) []byte {
	if raw, ok := ev.(json.RawMessage); ok {
		return raw
	}
	b, err := json.Marshal(ev)
	if err != nil {
		// A v1 map of strings always marshals; keep the event visible anyway.
		return []byte(strconv.Quote(fmt.Sprint(ev)))
	}
	return b
}

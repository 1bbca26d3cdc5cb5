package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	v2 "github.com/elastic/go-lumber/client/v2"
)

// rawEvent is a JSON document sent exactly as given. go-lumber encodes each
// event with its JSONEncoder (json.Marshal by default); json.Marshal would
// compact a json.RawMessage and escape <, > and &, so our encoder passes
// rawEvent bytes through untouched instead.
type rawEvent []byte

func encodeEvent(v interface{}) ([]byte, error) {
	if raw, ok := v.(rawEvent); ok {
		return raw, nil
	}
	return json.Marshal(v)
}

type clientOpts struct {
	addr        string
	mode        string
	compression int
	batch       int
	pipelining  int
	tlsCert     string
	tlsKey      string
	tlsCA       string
	serverName  string
	insecure    bool
	file        string
	count       int
	timeout     time.Duration
	messageSize int
	seqStart    uint64
}

type clientResult struct {
	Mode        string  `json:"mode"`
	Compression int     `json:"compression"`
	TLS         bool    `json:"tls"`
	Sent        uint64  `json:"sent"`
	Acked       uint64  `json:"acked"`
	Windows     uint64  `json:"windows"`
	ElapsedS    float64 `json:"elapsed_s"`
	EventsPerS  float64 `json:"events_per_s"`
	CPUUserS    float64 `json:"cpu_user_s"`
	CPUSysS     float64 `json:"cpu_sys_s"`
	MaxRSSKiB   int64   `json:"max_rss_kib"`
	Error       string  `json:"error,omitempty"`
}

// eventSource yields the events of one window into a reused arena.
type eventSource struct {
	lines   [][]byte // --file lines, or nil for generated events
	next    int
	seq     uint64
	padding []byte
	arena   []byte
	stamp   []byte
}

func loadLines(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening --file: %w", err)
	}
	defer f.Close()
	var lines [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := bytes.TrimRight(sc.Bytes(), "\r")
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if !json.Valid(line) {
			return nil, fmt.Errorf("--file %s line %d is not valid JSON", path, lineNo)
		}
		lines = append(lines, append([]byte(nil), line...))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading --file %s: %w", path, err)
	}
	if len(lines) == 0 {
		return nil, fmt.Errorf("--file %s holds no events", path)
	}
	return lines, nil
}

// fill puts n events into batch. Generated events are
// {"@timestamp":"…","seq":N,"message":"xxx…"} with seq counting from --seq-start.
func (s *eventSource) fill(batch []interface{}, n int) []interface{} {
	batch = batch[:0]
	if s.lines != nil {
		for i := 0; i < n; i++ {
			batch = append(batch, rawEvent(s.lines[s.next]))
			s.next = (s.next + 1) % len(s.lines)
		}
		return batch
	}
	s.arena = s.arena[:0]
	offsets := make([]int, 0, n+1)
	for i := 0; i < n; i++ {
		s.seq++
		offsets = append(offsets, len(s.arena))
		s.arena = append(s.arena, `{"@timestamp":"`...)
		s.arena = append(s.arena, s.stamp...)
		s.arena = append(s.arena, `","seq":`...)
		s.arena = strconv.AppendUint(s.arena, s.seq, 10)
		s.arena = append(s.arena, `,"message":"`...)
		s.arena = append(s.arena, s.padding...)
		s.arena = append(s.arena, `"}`...)
	}
	offsets = append(offsets, len(s.arena))
	for i := 0; i < n; i++ {
		batch = append(batch, rawEvent(s.arena[offsets[i]:offsets[i+1]]))
	}
	return batch
}

func runClient(args []string) int {
	var o clientOpts
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:5044", "host:port of the Lumberjack v2 receiver")
	fs.StringVar(&o.mode, "mode", "sync", "sync (SyncClient: one window at a time) or async (AsyncClient with --pipelining)")
	fs.IntVar(&o.compression, "compression", 3, "zlib level 0..9; 0 sends plain J frames (libbeat default 3)")
	fs.IntVar(&o.batch, "batch", 2048, "events per window (libbeat bulk_max_size default 2048)")
	fs.IntVar(&o.pipelining, "pipelining", 2, "async: windows in flight (libbeat default 2)")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "client certificate (PEM) for mutual TLS")
	fs.StringVar(&o.tlsKey, "tls-key", "", "client private key (PEM)")
	fs.StringVar(&o.tlsCA, "tls-ca", "", "CA bundle (PEM) that signed the server certificate; enables TLS")
	fs.StringVar(&o.serverName, "server-name", "", "name to verify in the server certificate (default: host of --addr)")
	fs.BoolVar(&o.insecure, "insecure", false, "TLS without verifying the server certificate")
	fs.StringVar(&o.file, "file", "", "NDJSON file to replay: lines are cycled and sent byte-for-byte unchanged")
	fs.IntVar(&o.count, "count", 10000, "events to send")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "go-lumber timeout: dial, window write, and each ACK read")
	fs.IntVar(&o.messageSize, "message-size", 100, "generated events: length of the message field")
	fs.Uint64Var(&o.seqStart, "seq-start", 1, "generated events: seq of the first event (several clients, distinct events)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "golumber client: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if o.mode != "sync" && o.mode != "async" {
		fmt.Fprintf(os.Stderr, "golumber client: --mode must be sync or async, not %q\n", o.mode)
		return 2
	}
	if o.batch < 1 || o.count < 0 || o.pipelining < 1 || o.messageSize < 0 {
		fmt.Fprintln(os.Stderr, "golumber client: --batch and --pipelining must be >= 1, --count and --message-size >= 0")
		return 2
	}
	tlsCfg, err := clientTLS(o.tlsCert, o.tlsKey, o.tlsCA, o.serverName, o.insecure)
	if err != nil {
		fmt.Fprintf(os.Stderr, "golumber client: %v\n", err)
		return 2
	}
	src := &eventSource{
		seq:     o.seqStart - 1,
		padding: bytes.Repeat([]byte("x"), o.messageSize),
		stamp:   []byte(time.Now().UTC().Format("2006-01-02T15:04:05.000Z")),
	}
	if o.file != "" {
		if src.lines, err = loadLines(o.file); err != nil {
			fmt.Fprintf(os.Stderr, "golumber client: %v\n", err)
			return 2
		}
	}

	res := clientResult{Mode: o.mode, Compression: o.compression, TLS: tlsCfg != nil}
	start := time.Now()
	err = send(&o, tlsCfg, src, &res)
	res.ElapsedS = round3(time.Since(start).Seconds())
	if res.ElapsedS > 0 {
		res.EventsPerS = float64(int64(float64(res.Acked) / time.Since(start).Seconds()))
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		res.CPUUserS = round3(time.Duration(ru.Utime.Nano()).Seconds())
		res.CPUSysS = round3(time.Duration(ru.Stime.Nano()).Seconds())
		res.MaxRSSKiB = ru.Maxrss // kilobytes on Linux
	}
	code := 0
	if err != nil {
		res.Error = err.Error()
		code = 1
	} else if res.Acked != uint64(o.count) {
		res.Error = fmt.Sprintf("only %d of %d events acknowledged", res.Acked, o.count)
		code = 1
	}
	line, _ := json.Marshal(res)
	fmt.Println(string(line))
	return code
}

func send(o *clientOpts, tlsCfg *tls.Config, src *eventSource, res *clientResult) error {
	dialer := &net.Dialer{Timeout: o.timeout}
	dial := dialer.Dial
	if tlsCfg != nil {
		dial = func(network, addr string) (net.Conn, error) {
			return tls.DialWithDialer(dialer, network, addr, tlsCfg)
		}
	}
	opts := []v2.Option{
		v2.Timeout(o.timeout),
		v2.CompressionLevel(o.compression),
		v2.JSONEncoder(encodeEvent),
	}
	batch := make([]interface{}, 0, o.batch)
	remaining := o.count

	if o.mode == "sync" {
		cl, err := v2.SyncDialWith(dial, o.addr, opts...)
		if err != nil {
			return fmt.Errorf("connecting to %s: %w", o.addr, err)
		}
		defer cl.Close()
		for remaining > 0 {
			n := min(o.batch, remaining)
			batch = src.fill(batch, n)
			res.Sent += uint64(n)
			res.Windows++
			acked, err := cl.Send(batch)
			res.Acked += uint64(acked)
			if err != nil {
				return fmt.Errorf("window %d (%d events): %w", res.Windows, n, err)
			}
			if acked != n {
				return fmt.Errorf("window %d: %d of %d events acknowledged", res.Windows, acked, n)
			}
			remaining -= n
		}
		return nil
	}

	cl, err := v2.AsyncDialWith(dial, o.addr, o.pipelining, opts...)
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", o.addr, err)
	}
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	for remaining > 0 {
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed {
			break
		}
		n := min(o.batch, remaining)
		// Send serialises the window before it returns, so the arena can be
		// reused for the next window while this one awaits its ACK.
		batch = src.fill(batch, n)
		res.Sent += uint64(n)
		res.Windows++
		window := res.Windows
		wg.Add(1)
		err := cl.Send(func(seq uint32, err error) {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			res.Acked += uint64(seq)
			if err == nil && int(seq) != n {
				err = fmt.Errorf("%d of %d events acknowledged", seq, n)
			}
			if err != nil && firstErr == nil {
				firstErr = fmt.Errorf("window %d (%d events): %w", window, n, err)
			}
		}, batch)
		if err != nil {
			break // the callback has recorded the error
		}
		remaining -= n
	}
	wg.Wait()
	// Close reports EOF to callbacks of windows still queued; all are done here.
	if err := cl.Close(); err != nil && firstErr == nil && !errors.Is(err, net.ErrClosed) {
		firstErr = fmt.Errorf("closing connection: %w", err)
	}
	return firstErr
}

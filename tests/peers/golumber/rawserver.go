package main

import (
	"bufio"
	"compress/zlib"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// The raw server speaks Lumberjack v2 on a bare socket so it can misbehave in
// ways go-lumber's server API cannot (partial ACKs, garbage, silence). When no
// fault is active it behaves like go-lumber: W, then J/C frames (C holding
// complete frames, nested C allowed), ACK = event count, ACK 0 keep-alives.

var errProtocol = errors.New("lumberjack protocol error")

type rawServer struct {
	o      *serverOpts
	tlsCfg *tls.Config
	rec    *recorder
	finish func(int)

	mu       sync.Mutex
	listener net.Listener
	conns    map[net.Conn]struct{}
	closed   bool
	quit     chan struct{} // closed by stop(); ends keep-alive holds
	wg       sync.WaitGroup

	faultMu   sync.Mutex
	fired     uint64
	accepted  uint64 // events ACKed so far (all connections)
	threshold uint64 // close-after-events / restart-after: fire when accepted would pass it
}

func startRaw(o *serverOpts, tcp net.Listener, tlsCfg *tls.Config, rec *recorder, finish func(int)) (func(), error) {
	s := &rawServer{o: o, tlsCfg: tlsCfg, rec: rec, finish: finish, conns: make(map[net.Conn]struct{}), quit: make(chan struct{}), threshold: o.fault.n}
	s.serve(tcp)
	return s.stop, nil
}

func (s *rawServer) serve(l net.Listener) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.listenLocked(l)
}

// listenLocked starts accepting on l; s.mu must be held.
func (s *rawServer) listenLocked(l net.Listener) {
	s.listener = l
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if s.tlsCfg != nil {
				c = tls.Server(c, s.tlsCfg)
			}
			s.mu.Lock()
			if s.closed {
				s.mu.Unlock()
				c.Close()
				return
			}
			s.conns[c] = struct{}{}
			s.mu.Unlock()
			s.rec.connections.Add(1)
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.handle(c)
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
		}
	}()
}

func (s *rawServer) stop() {
	s.mu.Lock()
	if !s.closed {
		close(s.quit)
	}
	s.closed = true
	if s.listener != nil {
		s.listener.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// restart drops the listener and every connection, then listens again on the
// same address after --restart-gap, like a Logstash restart.
func (s *rawServer) restart() {
	s.mu.Lock()
	addr := s.listener.Addr().String()
	s.listener.Close()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	// Called from a connection goroutine, which holds a wg count, so this Add
	// cannot race with stop()'s Wait reaching zero.
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		select {
		case <-time.After(s.o.restartGap): // the outage itself, not synchronisation
		case <-s.quit:
			return
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "golumber server: re-listening on %s after restart: %v\n", addr, err)
			s.finish(1)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed {
			l.Close()
			return
		}
		s.listenLocked(l)
	}()
}

// arm reports whether the fault fires for the next window of n events.
func (s *rawServer) arm(n uint64) bool {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	f := s.o.fault
	if f.kind == faultNone || (s.o.faultTimes > 0 && s.fired >= s.o.faultTimes) {
		return false
	}
	switch f.kind {
	case faultCloseAfterEvents:
		if s.accepted+n <= s.threshold {
			return false
		}
	case faultRestartAfter:
		// Fires after ACKing the window that reaches the threshold.
		if s.accepted+n < s.threshold {
			return false
		}
	case faultPartialAckThenClose, faultPartialAckPipelined, faultPartialAckThenHold:
		if n < 2 {
			return false
		}
	}
	s.fired++
	s.rec.faults.Add(1)
	return true
}

func (s *rawServer) addAccepted(n uint64) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	s.accepted += n
	if s.o.fault.kind == faultCloseAfterEvents || s.o.fault.kind == faultRestartAfter {
		if s.accepted >= s.threshold {
			s.threshold = s.accepted + s.o.fault.n
		}
	}
}

type countingReader struct {
	r   io.Reader
	rec *recorder
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.rec.bytesIn.Add(uint64(n))
	return n, err
}

// ackWriter serialises ACK writes; keep-alives and final ACKs never interleave.
type ackWriter struct {
	mu      sync.Mutex
	c       net.Conn
	timeout time.Duration
}

func (w *ackWriter) ack(n uint32) error {
	var b [6]byte
	b[0], b[1] = '2', 'A'
	binary.BigEndian.PutUint32(b[2:], n)
	return w.write(b[:])
}

func (w *ackWriter) write(b []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.c.SetWriteDeadline(time.Now().Add(w.timeout)); err != nil {
		return err
	}
	_, err := w.c.Write(b)
	return err
}

// hold waits d while sending ACK 0 every keepalive interval; stops early if
// the connection is closed (stop closed).
func (w *ackWriter) hold(d, keepalive time.Duration, stop <-chan struct{}) error {
	end := time.NewTimer(d)
	defer end.Stop()
	var tick <-chan time.Time
	if keepalive > 0 {
		t := time.NewTicker(keepalive)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-end.C:
			return nil
		case <-stop:
			return io.EOF
		case <-tick:
			if err := w.ack(0); err != nil {
				return err
			}
		}
	}
}

func (s *rawServer) handle(c net.Conn) {
	in := bufio.NewReaderSize(countingReader{r: c, rec: s.rec}, 64*1024)
	w := &ackWriter{c: c, timeout: s.o.timeout}
	for {
		_ = c.SetReadDeadline(time.Time{})
		var hdr [6]byte
		if _, err := io.ReadFull(in, hdr[:]); err != nil {
			return
		}
		if hdr[0] != '2' || hdr[1] != 'W' {
			fmt.Fprintf(os.Stderr, "golumber server: %s: expected window frame, got %q\n", c.RemoteAddr(), hdr[:2])
			return
		}
		n := binary.BigEndian.Uint32(hdr[2:])
		if n == 0 {
			continue // go-lumber ignores empty windows without replying
		}
		if s.o.maxWindow > 0 && uint64(n) > uint64(s.o.maxWindow) {
			fmt.Fprintf(os.Stderr, "golumber server: %s: window %d exceeds --max-window %d\n", c.RemoteAddr(), n, s.o.maxWindow)
			return
		}
		_ = c.SetReadDeadline(time.Now().Add(s.o.timeout))
		events, err := readFrames(in, make([][]byte, 0, n), int(n))
		if err != nil {
			fmt.Fprintf(os.Stderr, "golumber server: %s: reading window of %d: %v\n", c.RemoteAddr(), n, err)
			return
		}
		next := func() ([][]byte, error) { return readWindow(in) }
		if !s.window(c, w, events, s.quit, next) {
			return
		}
	}
}

// readWindow reads the next complete window (W and its frames) from in.
func readWindow(in *bufio.Reader) ([][]byte, error) {
	var hdr [6]byte
	if _, err := io.ReadFull(in, hdr[:]); err != nil {
		return nil, err
	}
	if hdr[0] != '2' || hdr[1] != 'W' {
		return nil, errProtocol
	}
	n := binary.BigEndian.Uint32(hdr[2:])
	return readFrames(in, make([][]byte, 0, n), int(n))
}

// window applies normal behaviour or the armed fault to one complete window;
// false means the connection is finished. next reads the following window (for
// faults that need the client's pipelined window read before they close).
func (s *rawServer) window(c net.Conn, w *ackWriter, events [][]byte, stop <-chan struct{}, next func() ([][]byte, error)) bool {
	n := uint64(len(events))
	fired := s.arm(n)
	kind := s.o.fault.kind
	if !fired {
		kind = faultNone
	}
	switch kind {
	case faultCloseAfterEvents:
		s.rec.unacked.Add(n)
		return false
	case faultNeverAck:
		s.rec.unacked.Add(n)
		s.silence(c, w)
		return false
	case faultGarbage:
		s.rec.unacked.Add(n)
		_ = w.write([]byte("garbage\n"))
		s.silence(c, nil)
		return false
	case faultPartialAckThenClose:
		half := n / 2
		if !s.accept(events[:half]) {
			return false
		}
		s.rec.unacked.Add(n - half)
		if err := w.ack(uint32(half)); err == nil {
			s.addAccepted(half)
			if s.rec.expectReached() {
				s.finish(0)
			}
		}
		return false
	case faultPartialAckPipelined:
		// The client has a second window in flight: read it whole first, so the
		// close below is a FIN with nothing unread (a RST could discard the
		// partial ACK), then ACK half of the first window and close. Neither the
		// second half nor the second window is recorded.
		second, err := next()
		if err != nil {
			fmt.Fprintf(os.Stderr, "golumber server: %s: reading the pipelined window: %v\n", c.RemoteAddr(), err)
			return false
		}
		half := n / 2
		if !s.accept(events[:half]) {
			return false
		}
		s.rec.unacked.Add(n - half + uint64(len(second)))
		if err := w.ack(uint32(half)); err == nil {
			s.addAccepted(half)
		}
		return false
	case faultPartialAckThenHold:
		// ACK half, then neither ACK nor close: the client holds a window partly
		// acknowledged until it gives up or stops. The rest is read and discarded.
		half := n / 2
		if !s.accept(events[:half]) {
			return false
		}
		s.rec.unacked.Add(n - half)
		if err := w.ack(uint32(half)); err == nil {
			s.addAccepted(half)
		}
		s.silence(c, nil)
		return false
	case faultAckTooLarge:
		// An ACK past the window's end: a protocol error for the client, which
		// must re-send the window rather than count it delivered. Not recorded.
		s.rec.unacked.Add(n)
		_ = w.ack(uint32(n) + 1)
		s.silence(c, nil)
		return false
	case faultKeepaliveOnly:
		if err := w.hold(s.o.fault.dur, s.o.keepalive, stop); err != nil {
			return false
		}
	}
	if !s.accept(events) {
		return false
	}
	if s.o.ackDelay > 0 {
		if err := w.hold(s.o.ackDelay, s.o.keepalive, stop); err != nil {
			return false
		}
	}
	if err := w.ack(uint32(n)); err != nil {
		return false
	}
	s.addAccepted(n)
	if s.rec.expectReached() {
		s.finish(0)
	}
	if kind == faultRestartAfter {
		s.restart()
		return false
	}
	return true
}

// accept records events; on a recorder failure the whole server stops.
func (s *rawServer) accept(events [][]byte) bool {
	if _, err := s.rec.recordBatch(events); err != nil {
		fmt.Fprintf(os.Stderr, "golumber server: %v\n", err)
		s.finish(1)
		return false
	}
	return true
}

// silence keeps the connection open and reads (discarding) until the client
// gives up, sending keep-alives when w is set and --keepalive > 0.
func (s *rawServer) silence(c net.Conn, w *ackWriter) {
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		_ = c.SetReadDeadline(time.Time{})
		_, _ = io.Copy(io.Discard, countingReader{r: c, rec: s.rec})
	}()
	if w == nil || s.o.keepalive <= 0 {
		<-gone
		return
	}
	t := time.NewTicker(s.o.keepalive)
	defer t.Stop()
	for {
		select {
		case <-gone:
			return
		case <-t.C:
			if err := w.ack(0); err != nil {
				return
			}
		}
	}
}

// readFrames reads J/C frames until want events are collected, with
// go-lumber's semantics: C holds whole frames, nested C allowed, events past
// the window inside a C are dropped, W inside C is an error.
func readFrames(in io.Reader, events [][]byte, want int) ([][]byte, error) {
	for len(events) < want {
		var hdr [2]byte
		if _, err := io.ReadFull(in, hdr[:]); err != nil {
			return nil, err
		}
		if hdr[0] != '2' {
			return nil, fmt.Errorf("%w: version byte 0x%02x", errProtocol, hdr[0])
		}
		switch hdr[1] {
		case 'J':
			var h [8]byte
			if _, err := io.ReadFull(in, h[:]); err != nil {
				return nil, err
			}
			size := binary.BigEndian.Uint32(h[4:])
			if size == 0 {
				return nil, fmt.Errorf("%w: JSON frame of length 0", errProtocol)
			}
			buf := make([]byte, size)
			if _, err := io.ReadFull(in, buf); err != nil {
				return nil, err
			}
			if !json.Valid(buf) {
				return nil, fmt.Errorf("%w: JSON frame seq %d is not valid JSON", errProtocol, binary.BigEndian.Uint32(h[:4]))
			}
			events = append(events, buf)
		case 'C':
			var h [4]byte
			if _, err := io.ReadFull(in, h[:]); err != nil {
				return nil, err
			}
			limit := io.LimitReader(in, int64(binary.BigEndian.Uint32(h[:])))
			zr, err := zlib.NewReader(limit)
			if err != nil {
				return nil, fmt.Errorf("compressed frame: %w", err)
			}
			events, err = readFrames(zr, events, want)
			if err != nil {
				return nil, fmt.Errorf("inside compressed frame: %w", err)
			}
			if err := zr.Close(); err != nil {
				return nil, err
			}
			if _, err := io.Copy(io.Discard, limit); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("%w: unexpected frame type 0x%02x", errProtocol, hdr[1])
		}
	}
	return events, nil
}

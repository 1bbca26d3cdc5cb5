package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// recorder is the single sink for accepted events: it appends them to --out,
// counts distinct/duplicate events by their "seq" field and signals when
// --expect distinct events have arrived.
type recorder struct {
	mu         sync.Mutex
	out        *bufio.Writer
	outFile    *os.File
	seen       map[string]struct{}
	events     uint64
	distinct   uint64
	duplicates uint64
	noSeq      uint64
	batches    uint64
	firstEvent time.Time
	lastEvent  time.Time
	expect     uint64
	reached    chan struct{}
	reachedSet bool

	start       time.Time
	bytesIn     atomic.Uint64
	connections atomic.Uint64
	unacked     atomic.Uint64 // events read but deliberately not ACKed (fault modes)
	faults      atomic.Uint64 // how many times the fault fired
}

func newRecorder(outPath string, expect uint64) (*recorder, error) {
	r := &recorder{
		seen:    make(map[string]struct{}),
		expect:  expect,
		reached: make(chan struct{}),
		start:   time.Now(),
	}
	if outPath != "" {
		f, err := os.OpenFile(outPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("opening --out %s: %w", outPath, err)
		}
		r.outFile = f
		r.out = bufio.NewWriterSize(f, 256*1024)
	}
	return r, nil
}

type seqOnly struct {
	Seq json.RawMessage `json:"seq"`
}

// seqKey returns the event's "seq" value normalised so that 7 and "7" are the
// same event (v1 clients can only send strings); ok=false when there is none.
func seqKey(raw []byte) (string, bool) {
	var s seqOnly
	if err := json.Unmarshal(raw, &s); err != nil || len(s.Seq) == 0 || string(s.Seq) == "null" {
		return "", false
	}
	if s.Seq[0] == '"' {
		var str string
		if err := json.Unmarshal(s.Seq, &str); err != nil {
			return "", false
		}
		return str, true
	}
	return string(s.Seq), true
}

// recordBatch stores one accepted batch. It must be called before the batch is
// ACKed, so --out never lacks an event the peer has acknowledged. Returns true
// when this batch made the --expect target.
func (r *recorder) recordBatch(events [][]byte) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if r.batches == 0 && r.events == 0 {
		r.firstEvent = now
	}
	r.lastEvent = now
	r.batches++
	for _, ev := range events {
		r.events++
		if key, ok := seqKey(ev); ok {
			if _, dup := r.seen[key]; dup {
				r.duplicates++
			} else {
				r.seen[key] = struct{}{}
				r.distinct++
			}
		} else {
			r.noSeq++
			r.distinct++
		}
		if r.out != nil {
			line := ev
			if bytes.ContainsAny(ev, "\r\n") {
				// NDJSON needs one line per event; compacting only removes
				// insignificant whitespace (newlines inside strings are escaped).
				var buf bytes.Buffer
				if err := json.Compact(&buf, ev); err != nil {
					return false, fmt.Errorf("compacting event for --out: %w", err)
				}
				line = buf.Bytes()
			}
			if _, err := r.out.Write(line); err != nil {
				return false, fmt.Errorf("writing --out: %w", err)
			}
			if err := r.out.WriteByte('\n'); err != nil {
				return false, fmt.Errorf("writing --out: %w", err)
			}
		}
	}
	if r.out != nil {
		// Flushed per batch so a harness can read --out while the server runs.
		if err := r.out.Flush(); err != nil {
			return false, fmt.Errorf("flushing --out: %w", err)
		}
	}
	if r.expect > 0 && r.distinct >= r.expect && !r.reachedSet {
		r.reachedSet = true
		return true, nil
	}
	return false, nil
}

func (r *recorder) expectReached() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reachedSet
}

// stats renders the final one-line JSON summary.
func (r *recorder) stats(kind, fault string) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	active := 0.0
	if r.events > 0 {
		active = r.lastEvent.Sub(r.firstEvent).Seconds()
	}
	s := map[string]any{
		"server":             kind,
		"fault":              fault,
		"events":             r.events,
		"distinct":           r.distinct,
		"duplicates":         r.duplicates,
		"events_without_seq": r.noSeq,
		"batches":            r.batches,
		"bytes":              r.bytesIn.Load(),
		"connections":        r.connections.Load(),
		"unacked_events":     r.unacked.Load(),
		"faults_fired":       r.faults.Load(),
		"expect":             r.expect,
		"expect_reached":     r.reachedSet,
		"elapsed_s":          round3(time.Since(r.start).Seconds()),
		"first_to_last_s":    round3(active),
	}
	b, _ := json.Marshal(s)
	return b
}

func (r *recorder) close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.outFile == nil {
		return nil
	}
	if err := r.out.Flush(); err != nil {
		return err
	}
	return r.outFile.Close()
}

func round3(f float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'f', 3, 64), 64)
	return v
}

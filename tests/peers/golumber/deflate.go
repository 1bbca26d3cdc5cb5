package main

// golumber deflate: the wire size and single-core CPU of go-lumber's C frames
// (klauspost/compress zlib, written event by event exactly as go-lumber's
// client.serialize does) per zlib level, on the windows of an NDJSON file. skidder's
// compression_level mapping (src/outputs/logstash/compress.rs) is chosen against it.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/klauspost/compress/zlib"
)

type deflateRow struct {
	Level         int     `json:"level"`
	Events        int     `json:"events"`
	BytesPerEvent float64 `json:"wire_bytes_per_event"`
	NsPerEvent    float64 `json:"cpu_ns_per_event"`
}

// threadCPU is this thread's CPU time (the loop runs on one locked OS thread).
func threadCPU() time.Duration {
	var ts syscall.Timespec
	// CLOCK_THREAD_CPUTIME_ID = 3
	_, _, _ = syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 3, uintptrOf(&ts), 0)
	return time.Duration(ts.Nano())
}

func runDeflate(args []string) int {
	fs := flag.NewFlagSet("deflate", flag.ContinueOnError)
	file := fs.String("file", "", "NDJSON file: its lines, in windows of --batch events")
	batch := fs.Int("batch", 2048, "events per window")
	budget := fs.Duration("budget", time.Second, "CPU time to spend per level")
	levels := fs.String("levels", "1,2,3,4,5,6,7,8,9", "zlib levels, comma-separated")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	lines, err := loadLines(*file)
	if err != nil {
		fmt.Fprintf(os.Stderr, "golumber deflate: %v\n", err)
		return 2
	}
	var lvls []int
	for _, f := range bytes.Split([]byte(*levels), []byte(",")) {
		var l int
		if _, err := fmt.Sscanf(string(f), "%d", &l); err != nil || l < 1 || l > 9 {
			fmt.Fprintf(os.Stderr, "golumber deflate: bad level %q\n", f)
			return 2
		}
		lvls = append(lvls, l)
	}
	lockThread()
	var out bytes.Buffer
	enc := json.NewEncoder(os.Stdout)
	for _, level := range lvls {
		events, wire := 0, 0
		start := threadCPU()
		spent := time.Duration(0)
		for spent < *budget {
			for i := 0; i < len(lines); i += *batch {
				end := i + *batch
				if end > len(lines) {
					end = len(lines)
				}
				out.Reset()
				w, err := zlib.NewWriterLevel(&out, level)
				if err != nil {
					fmt.Fprintf(os.Stderr, "golumber deflate: %v\n", err)
					return 1
				}
				for j, line := range lines[i:end] {
					_, _ = w.Write([]byte{'2', 'J'})
					_ = binary.Write(w, binary.BigEndian, uint32(j+1))
					_ = binary.Write(w, binary.BigEndian, uint32(len(line)))
					_, _ = w.Write(line)
				}
				if err := w.Close(); err != nil {
					fmt.Fprintf(os.Stderr, "golumber deflate: %v\n", err)
					return 1
				}
				events += end - i
				// W frame (6 bytes) and C header (6 bytes), as on the wire.
				wire += out.Len() + 12
			}
			spent = threadCPU() - start
		}
		_ = enc.Encode(deflateRow{
			Level:         level,
			Events:        events,
			BytesPerEvent: float64(wire) / float64(events),
			NsPerEvent:    float64(spent.Nanoseconds()) / float64(events),
		})
	}
	return 0
}

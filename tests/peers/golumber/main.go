// Command golumber is a third-party Lumberjack v2 peer for skidder's tests.
//
// It wraps github.com/elastic/go-lumber (the library libbeat uses) so that
// skidder's shipper and receiver are checked against code nobody on the
// project wrote. See README.md for the exact command line.
package main

import (
	"fmt"
	"os"
)

const usage = `usage:
  golumber server [flags]   Lumberjack v1/v2 receiver (go-lumber, or a raw fault-injecting server)
  golumber client [flags]   go-lumber v2 client that sends events and reports throughput
  golumber socks5 [flags]   SOCKS5 proxy (github.com/armon/go-socks5) for proxy_url tests
  golumber deflate [flags]  go-lumber's C-frame size and CPU per zlib level on an NDJSON file
run "golumber server -h", "golumber client -h" or "golumber socks5 -h" for the flags`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	var code int
	switch os.Args[1] {
	case "server":
		code = runServer(os.Args[2:])
	case "client":
		code = runClient(os.Args[2:])
	case "socks5":
		code = runSocks5(os.Args[2:])
	case "deflate":
		code = runDeflate(os.Args[2:])
	case "-h", "--help", "help":
		fmt.Println(usage)
	default:
		fmt.Fprintf(os.Stderr, "golumber: unknown subcommand %q\n%s\n", os.Args[1], usage)
		code = 2
	}
	os.Exit(code)
}

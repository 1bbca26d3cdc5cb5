// Filebeat 7.17.29 built from the Go module proxy, as a test peer for skidder: mirrors
// beats' filebeat/main.go so the binary behaves as the released filebeat does.
package main

import (
	"os"

	"github.com/elastic/beats/v7/filebeat/cmd"
	inputs "github.com/elastic/beats/v7/filebeat/input/default-inputs"
)

func main() {
	if err := cmd.Filebeat(inputs.Init, cmd.FilebeatSettings()).Execute(); err != nil {
		os.Exit(1)
	}
}

// Filebeat 7.17.29 with its x-pack http_endpoint input added to the default inputs, for
// skidder's HTTP intake benchmark (the OSS build in ../main.go has no http_endpoint). Built
// by .ci/peers/filebeat-http.sh from the same go.mod as the OSS peer.
package main

import (
	"os"

	"github.com/elastic/beats/v7/filebeat/beater"
	"github.com/elastic/beats/v7/filebeat/cmd"
	inputs "github.com/elastic/beats/v7/filebeat/input/default-inputs"
	v2 "github.com/elastic/beats/v7/filebeat/input/v2"
	"github.com/elastic/beats/v7/libbeat/beat"
	"github.com/elastic/beats/v7/libbeat/logp"
	"github.com/elastic/beats/v7/x-pack/filebeat/input/http_endpoint"
)

func main() {
	withHTTP := func(info beat.Info, log *logp.Logger, store beater.StateStore) []v2.Plugin {
		return append(inputs.Init(info, log, store), http_endpoint.Plugin())
	}
	if err := cmd.Filebeat(withHTTP, cmd.FilebeatSettings()).Execute(); err != nil {
		os.Exit(1)
	}
}

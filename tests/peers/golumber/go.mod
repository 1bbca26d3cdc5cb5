module skidder.test/peers/golumber

go 1.22

require (
	github.com/armon/go-socks5 v0.0.0-20160902184237-e75332964ef5
	github.com/elastic/go-lumber v0.2.0
	github.com/klauspost/compress v1.15.9
)

require (
	golang.org/x/net v0.24.0 // indirect
)

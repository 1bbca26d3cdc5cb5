package main

import (
	"flag"
	"fmt"
	"net"
	"os"

	socks5 "github.com/armon/go-socks5"
)

// runSocks5 serves SOCKS5 (RFC 1928 CONNECT, optionally RFC 1929 user/password)
// with github.com/armon/go-socks5, so skidder's proxy_url client is checked
// against a proxy nobody on the project wrote. Prints "READY host:port".
func runSocks5(args []string) int {
	fs := flag.NewFlagSet("socks5", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on; port 0 picks a free port (see the READY line)")
	user := fs.String("user", "", "require this user name (with --pass)")
	pass := fs.String("pass", "", "require this password (with --user)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	conf := &socks5.Config{}
	if *user != "" || *pass != "" {
		conf.Credentials = socks5.StaticCredentials{*user: *pass}
	}
	server, err := socks5.New(conf)
	if err != nil {
		fmt.Fprintf(os.Stderr, "golumber socks5: %v\n", err)
		return 2
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "golumber socks5: %v\n", err)
		return 2
	}
	fmt.Printf("READY %s\n", l.Addr().String())
	if err := server.Serve(l); err != nil {
		fmt.Fprintf(os.Stderr, "golumber socks5: %v\n", err)
		return 1
	}
	return 0
}

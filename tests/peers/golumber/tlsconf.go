package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
)

// loadCAPool reads every PEM certificate in path into a fresh pool.
func loadCAPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading CA file %s: %w", path, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", path)
	}
	return pool, nil
}

// limitTLS applies --tls-max-version (1.2 or 1.3) and --tls-ciphers (Go's names of
// TLS 1.2 suites, comma-separated) to cfg, so a client can be tested against a
// Go crypto/tls server that speaks only TLS 1.2 or only some suites.
func limitTLS(cfg *tls.Config, maxVersion, ciphers string) error {
	switch maxVersion {
	case "":
	case "1.2":
		cfg.MaxVersion = tls.VersionTLS12
	case "1.3":
		cfg.MaxVersion = tls.VersionTLS13
	default:
		return fmt.Errorf("--tls-max-version %q: use 1.2 or 1.3", maxVersion)
	}
	if ciphers == "" {
		return nil
	}
	byName := map[string]uint16{}
	for _, c := range tls.CipherSuites() {
		byName[c.Name] = c.ID
	}
	for _, name := range strings.Split(ciphers, ",") {
		id, ok := byName[strings.TrimSpace(name)]
		if !ok {
			return fmt.Errorf("--tls-ciphers: unknown suite %q", name)
		}
		cfg.CipherSuites = append(cfg.CipherSuites, id)
	}
	return nil
}

// serverTLS builds the Go crypto/tls server side; nil when no certificate is given.
func serverTLS(cert, key, ca string, requireClientCert bool) (*tls.Config, error) {
	if cert == "" && key == "" {
		if ca != "" || requireClientCert {
			return nil, fmt.Errorf("--tls-ca/--require-client-cert need --tls-cert and --tls-key")
		}
		return nil, nil
	}
	if cert == "" || key == "" {
		return nil, fmt.Errorf("--tls-cert and --tls-key must be given together")
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("loading server certificate %s / key %s: %w", cert, key, err)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{pair},
		MinVersion:   tls.VersionTLS12,
		ClientAuth:   tls.NoClientCert,
	}
	if ca != "" {
		pool, err := loadCAPool(ca)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		// Like Logstash: CAs without an explicit requirement still verify a
		// certificate the client chooses to present.
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	if requireClientCert {
		if ca == "" {
			return nil, fmt.Errorf("--require-client-cert needs --tls-ca to verify against")
		}
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// clientTLS builds the client side; nil when TLS is not requested at all.
func clientTLS(cert, key, ca, serverName string, insecure bool) (*tls.Config, error) {
	if cert == "" && key == "" && ca == "" && !insecure {
		return nil, nil
	}
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: insecure, //nolint:gosec // explicit test-only flag
		ServerName:         serverName,
	}
	if ca != "" {
		pool, err := loadCAPool(ca)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if cert != "" || key != "" {
		if cert == "" || key == "" {
			return nil, fmt.Errorf("--tls-cert and --tls-key must be given together")
		}
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("loading client certificate %s / key %s: %w", cert, key, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

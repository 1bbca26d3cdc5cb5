package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
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

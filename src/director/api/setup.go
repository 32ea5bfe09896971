package api

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/etcd-release/etcd-release/src/pki"
)

// TLSFiles are the director's CA and server certificate in the state dir; clients trust CACert.
type TLSFiles struct{ CACert, ServerCert, ServerKey string }

// TLSPaths of stateDir.
func TLSPaths(stateDir string) TLSFiles {
	return TLSFiles{CACert: filepath.Join(stateDir, "director-ca.crt"), ServerCert: filepath.Join(stateDir, "director.crt"), ServerKey: filepath.Join(stateDir, "director.key")}
}

// LoadOrCreateTLS returns the director's server TLS config, generating a CA and a server certificate for ips
// (plus 127.0.0.1 and localhost) on first use. The certificates are ECDSA P-256; the bosh CLI and Go clients
// accept them.
func LoadOrCreateTLS(stateDir string, ips []net.IP) (*tls.Config, error) {
	p := TLSPaths(stateDir)
	if _, err := os.Stat(p.ServerCert); errors.Is(err, os.ErrNotExist) {
		ca, err := pki.GenerateCA("local-director-ca", 0)
		if err != nil {
			return nil, err
		}
		all := append([]net.IP{net.IPv4(127, 0, 0, 1)}, ips...)
		pair, err := ca.Issue(pki.Request{CommonName: "local-director", DNSNames: []string{"localhost"}, IPs: all, Usage: pki.UsageServer})
		if err != nil {
			return nil, err
		}
		for path, b := range map[string][]byte{p.CACert: ca.CertPEM(), p.ServerCert: pair.CertPEM, p.ServerKey: pair.KeyPEM} {
			if err := os.WriteFile(path, b, 0o600); err != nil {
				return nil, err
			}
		}
	}
	cert, err := tls.LoadX509KeyPair(p.ServerCert, p.ServerKey)
	if err != nil {
		return nil, fmt.Errorf("director certificate in %s: %w", stateDir, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// LoadOrCreateCredentials returns the given credentials, or those saved in the state dir, or new generated ones
// (saved as creds.json, mode 0600).
func LoadOrCreateCredentials(stateDir string, given Credentials) (Credentials, error) {
	path := filepath.Join(stateDir, "creds.json")
	if given.User != "" && given.Password != "" {
		b, _ := json.Marshal(given)
		return given, os.WriteFile(path, b, 0o600)
	}
	if b, err := os.ReadFile(path); err == nil {
		var c Credentials
		if err := json.Unmarshal(b, &c); err != nil {
			return c, fmt.Errorf("%s: %w", path, err)
		}
		return c, nil
	}
	buf := make([]byte, 16)
	if _, err := rand.Read(buf); err != nil {
		return Credentials{}, err
	}
	c := Credentials{User: "admin", Password: hex.EncodeToString(buf)}
	b, _ := json.Marshal(c)
	return c, os.WriteFile(path, b, 0o600)
}

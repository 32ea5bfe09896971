package api

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// TLSFiles are the director's CA and server certificate in the state dir; clients trust CACert.
type TLSFiles struct{ CACert, ServerCert, ServerKey string }

// TLSPaths of stateDir.
func TLSPaths(stateDir string) TLSFiles {
	return TLSFiles{CACert: filepath.Join(stateDir, "director-ca.crt"), ServerCert: filepath.Join(stateDir, "director.crt"), ServerKey: filepath.Join(stateDir, "director.key")}
}

// LoadOrCreateTLS returns the director's server TLS config, generating on first use a CA and an RSA-2048 server
// certificate for ips plus 127.0.0.1 and localhost (the bosh CLI expects an RSA certificate it can verify against
// the CA it is given). The CA certificate is written to the state dir for clients; the keys stay there, 0600.
func LoadOrCreateTLS(stateDir string, ips []net.IP) (*tls.Config, error) {
	p := TLSPaths(stateDir)
	if _, err := os.Stat(p.ServerCert); errors.Is(err, os.ErrNotExist) {
		caPEM, certPEM, keyPEM, err := generateRSA(append([]net.IP{net.IPv4(127, 0, 0, 1)}, ips...))
		if err != nil {
			return nil, fmt.Errorf("generating the director certificate: %w", err)
		}
		for _, f := range []struct {
			path string
			b    []byte
		}{{p.CACert, caPEM}, {p.ServerKey, keyPEM}, {p.ServerCert, certPEM}} {
			if err := os.WriteFile(f.path, f.b, 0o600); err != nil {
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

// generateRSA makes a self-signed RSA CA and a server certificate it signs, valid for ten years.
func generateRSA(ips []net.IP) (caPEM, certPEM, keyPEM []byte, err error) {
	caKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, nil, err
	}
	now := time.Now().Add(-time.Hour)
	serial := func() *big.Int {
		n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
		return n
	}
	caTmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "local-director-ca", Organization: []string{"etcd-release"}},
		NotBefore: now, NotAfter: now.AddDate(10, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, nil, nil, err
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "local-director", Organization: []string{"etcd-release"}},
		NotBefore: now, NotAfter: now.AddDate(10, 0, 0), DNSNames: []string{"localhost"}, IPAddresses: ips,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	return caPEM, certPEM, keyPEM, nil
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

package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseCertificates(t *testing.T) {
	ca, newCA := mustCA(t, "ca"), mustCA(t, "new-ca")
	cert := ca.CertPEM()
	body := strings.TrimSpace(string(cert))
	csr := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte{1}})
	for name, tc := range map[string]struct {
		in    []byte
		count int    // when no error is expected
		want  error  // errors.Is target
		msg   string // substring of the message
	}{
		"one certificate":          {in: cert, count: 1},
		"rotation bundle":          {in: concat(cert, newCA.CertPEM()), count: 2},
		"blank lines around":       {in: concat([]byte("\n\n"), cert, []byte("\n"), newCA.CertPEM(), []byte("\n\n")), count: 2},
		"CRLF line endings":        {in: bytes.ReplaceAll(cert, []byte("\n"), []byte("\r\n")), count: 1},
		"no final newline":         {in: bytes.TrimSpace(cert), count: 1},
		"empty":                    {in: nil, want: ErrEmpty},
		"whitespace":               {in: []byte(" \n\t"), want: ErrEmpty},
		"not PEM":                  {in: []byte("not a certificate"), want: ErrNotPEM, msg: "no -----BEGIN CERTIFICATE----- block found"},
		"a file path":              {in: []byte("/var/vcap/jobs/etcd/config/certs/ca.crt"), want: ErrNotPEM, msg: "looks like a file path"},
		"a key instead":            {in: ca.KeyPEM(), want: ErrWrongBlockType, msg: `found a "PRIVATE KEY" block where a CERTIFICATE was expected (is a key in a certificate property?)`},
		"certificate then its key": {in: concat(cert, ca.KeyPEM()), want: ErrWrongBlockType, msg: `"PRIVATE KEY"`},
		"a signing request":        {in: csr, want: ErrWrongBlockType, msg: "signing request"},
		"corrupt DER":              {in: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}}), want: ErrBadDER, msg: "certificate 1 of 1 cannot be parsed"},
		"trailing garbage":         {in: concat(cert, []byte("garbage")), want: ErrNotPEM, msg: "unexpected text after PEM block 1"},
		"leading garbage":          {in: concat([]byte("subject=CN=ca\n"), cert), want: ErrNotPEM, msg: "before the first PEM block"},
		"line breaks folded away":  {in: []byte(strings.ReplaceAll(body, "\n", " ")), want: ErrNotPEM, msg: "lost its line breaks"},
		"literal backslash-n":      {in: []byte(strings.ReplaceAll(body, "\n", `\n`)), want: ErrNotPEM, msg: `literal \n`},
		"truncated":                {in: cert[:len(cert)/2], want: ErrNotPEM, msg: "PEM block 1 is truncated"},
		"truncated before another": {in: concat(cert[:len(cert)/2], newCA.CertPEM()), want: ErrNotPEM, msg: "next -----BEGIN line comes before its -----END line"},
		"damaged base64": {
			in:   []byte(strings.Replace(string(cert), "\n", "\n!!!!", 2)),
			want: ErrNotPEM, msg: "PEM block 1 is malformed",
		},
	} {
		t.Run(name, func(t *testing.T) {
			certs, err := ParseCertificates(tc.in)
			if tc.want == nil {
				require.NoError(t, err)
				require.Len(t, certs, tc.count)
				return
			}
			require.ErrorIs(t, err, tc.want)
			require.Contains(t, err.Error(), tc.msg)
		})
	}
}

func TestParsePrivateKey(t *testing.T) {
	ca := mustCA(t, "ca")
	ecPKCS8 := ca.KeyPEM()
	ecKey := ca.Key.(*ecdsa.PrivateKey)
	sec1DER, err := x509.MarshalECPrivateKey(ecKey)
	require.NoError(t, err)
	sec1 := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1DER})
	rsaCA := mustCA(t, "rsa", WithRSA())
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaCA.Key.(*rsa.PrivateKey))})
	ecParams := pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}})
	legacyEncrypted := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00"}, Bytes: []byte{1}})
	secretBody := strings.Split(string(ecPKCS8), "\n")[1]

	for name, tc := range map[string]struct {
		in   []byte
		rsa  bool  // when no error is expected
		want error // errors.Is target
		msg  string
	}{
		"PKCS#8 ECDSA":                    {in: ecPKCS8},
		"PKCS#8 RSA":                      {in: rsaCA.KeyPEM(), rsa: true},
		"SEC1":                            {in: sec1},
		"PKCS#1":                          {in: pkcs1, rsa: true},
		"openssl ecparam -genkey output":  {in: concat(ecParams, sec1)},
		"PKCS#1 mislabelled as PKCS#8":    {in: bytes.ReplaceAll(pkcs1, []byte("RSA PRIVATE KEY"), []byte("PRIVATE KEY")), rsa: true},
		"empty":                           {in: []byte("\n"), want: ErrEmpty},
		"not PEM":                         {in: []byte("secret"), want: ErrNotPEM, msg: "no -----BEGIN PRIVATE KEY----- block found"},
		"a certificate instead":           {in: ca.CertPEM(), want: ErrWrongBlockType, msg: `found a "CERTIFICATE" block where a private key was expected (is a certificate in a key property?)`},
		"PKCS#8 encrypted":                {in: pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}}), want: ErrEncryptedKey, msg: "passphrase"},
		"legacy encrypted":                {in: legacyEncrypted, want: ErrEncryptedKey},
		"two keys":                        {in: concat(ecPKCS8, rsaCA.KeyPEM()), want: ErrMultipleKeys},
		"only EC parameters":              {in: ecParams, want: ErrNotPEM, msg: "no private key block"},
		"corrupt DER":                     {in: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2}}), want: ErrBadDER},
		"trailing garbage":                {in: concat(ecPKCS8, []byte("x")), want: ErrNotPEM, msg: "after PEM block 1"},
		"line breaks folded (never leak)": {in: bytes.ReplaceAll(bytes.TrimSpace(ecPKCS8), []byte("\n"), []byte(" ")), want: ErrNotPEM, msg: "lost its line breaks"},
	} {
		t.Run(name, func(t *testing.T) {
			key, err := ParsePrivateKey(tc.in)
			if tc.want == nil {
				require.NoError(t, err)
				_, isRSA := key.(*rsa.PrivateKey)
				require.Equal(t, tc.rsa, isRSA)
				return
			}
			require.ErrorIs(t, err, tc.want)
			require.Contains(t, err.Error(), tc.msg)
			require.NotContains(t, err.Error(), secretBody[:16], "messages never quote key material")
		})
	}
}

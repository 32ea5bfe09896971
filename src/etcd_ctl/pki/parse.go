package pki

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
)

// ParseCertificates parses every CERTIFICATE block of a PEM bundle (a bundle may hold several certificates, e.g.
// the old and the new CA during a rotation, or a certificate followed by its intermediates). Anything else in the
// input is an error: no PEM at all (ErrNotPEM), another block type (ErrWrongBlockType), a malformed or truncated
// block (ErrNotPEM), a block that is not a valid certificate, or text before, between or after the blocks.
func ParseCertificates(pemData []byte) ([]*x509.Certificate, error) {
	blocks, err := splitPEM(pemData, "CERTIFICATE")
	if err != nil {
		return nil, err
	}
	certs := make([]*x509.Certificate, 0, len(blocks))
	for i, block := range blocks {
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%w: found a %q block where a CERTIFICATE was expected%s", ErrWrongBlockType, block.Type, certBlockHint(block.Type))
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: certificate %d of %d cannot be parsed (%w); copy the certificate again without edits",
				ErrBadDER, i+1, len(blocks), err)
		}
		certs = append(certs, c)
	}
	return certs, nil
}

// ParsePrivateKey parses one unencrypted private key: PKCS#8 ("PRIVATE KEY"), PKCS#1 ("RSA PRIVATE KEY") or SEC1
// ("EC PRIVATE KEY"). An "EC PARAMETERS" block (as `openssl ecparam -genkey` writes it) is ignored. Like Go's
// tls.X509KeyPair, which etcd uses, a key under the wrong one of these three labels is still accepted.
func ParsePrivateKey(pemData []byte) (crypto.Signer, error) {
	blocks, err := splitPEM(pemData, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	var keys []*pem.Block
	for _, block := range blocks {
		switch {
		case block.Type == "EC PARAMETERS":
			continue
		case block.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(block.Headers["Proc-Type"], "ENCRYPTED"):
			return nil, fmt.Errorf("%w: the %q block is protected by a passphrase; etcd needs an unencrypted key "+
				"(decrypt it with `openssl pkey -in key.pem -out key-plain.pem`)", ErrEncryptedKey, block.Type)
		case block.Type == "PRIVATE KEY" || block.Type == "RSA PRIVATE KEY" || block.Type == "EC PRIVATE KEY":
			keys = append(keys, block)
		default:
			hint := ""
			if block.Type == "CERTIFICATE" {
				hint = " (is a certificate in a key property?)"
			}
			return nil, fmt.Errorf("%w: found a %q block where a private key was expected%s", ErrWrongBlockType, block.Type, hint)
		}
	}
	switch len(keys) {
	case 0:
		return nil, fmt.Errorf("%w: found only EC PARAMETERS, no private key block", ErrNotPEM)
	case 1:
	default:
		return nil, fmt.Errorf("%w: found %d private keys; keep only the key of the certificate", ErrMultipleKeys, len(keys))
	}
	block := keys[0]
	key, err := parseKeyDER(block)
	if err != nil {
		return nil, fmt.Errorf("%w: the %q block cannot be parsed (%w); copy the key again without edits", ErrBadDER, block.Type, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: unsupported private key type %T; use an ECDSA, RSA or Ed25519 key", ErrBadDER, key)
	}
	return signer, nil
}

// parseKeyDER tries the parser the label names first, then the other two, as crypto/tls does.
func parseKeyDER(block *pem.Block) (any, error) {
	parsers := map[string]func([]byte) (any, error){
		"PRIVATE KEY":     x509.ParsePKCS8PrivateKey,
		"RSA PRIVATE KEY": func(der []byte) (any, error) { return x509.ParsePKCS1PrivateKey(der) },
		"EC PRIVATE KEY":  func(der []byte) (any, error) { return x509.ParseECPrivateKey(der) },
	}
	key, firstErr := parsers[block.Type](block.Bytes)
	if firstErr == nil {
		return key, nil
	}
	for label, parse := range parsers {
		if label == block.Type {
			continue
		}
		if key, err := parse(block.Bytes); err == nil {
			return key, nil
		}
	}
	return nil, firstErr
}

// splitPEM decodes every PEM block of data, strictly: the input must consist of PEM blocks separated by
// whitespace only. want ("CERTIFICATE", "PRIVATE KEY") only phrases the messages. Messages never quote the
// input, which may be a secret.
func splitPEM(data []byte, want string) ([]*pem.Block, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, ErrEmpty
	}
	var blocks []*pem.Block
	rest := data
	for {
		rest = bytes.TrimLeft(rest, " \t\r\n")
		if len(rest) == 0 {
			return blocks, nil
		}
		if !bytes.HasPrefix(rest, []byte("-----BEGIN ")) {
			return nil, strayText(rest, len(blocks), want)
		}
		segment, next, err := firstBlock(rest, len(blocks)+1)
		if err != nil {
			return nil, err
		}
		block, remainder := pem.Decode(segment)
		if block == nil || len(bytes.TrimSpace(remainder)) > 0 {
			return nil, fmt.Errorf("%w: PEM block %d is malformed (its BEGIN and END lines differ or its base64 body is damaged); copy it again without edits",
				ErrNotPEM, len(blocks)+1)
		}
		blocks = append(blocks, block)
		rest = next
	}
}

// firstBlock cuts the PEM block at the start of data (which begins with "-----BEGIN ") up to the end of its END
// line, and diagnoses the usual ways operators lose a block's line structure.
func firstBlock(data []byte, n int) (segment, rest []byte, err error) {
	end := bytes.Index(data, []byte("\n-----END "))
	if end < 0 {
		switch {
		case bytes.Contains(data, []byte(`\n`)):
			return nil, nil, fmt.Errorf("%w: PEM block %d contains literal \\n sequences instead of line breaks; "+
				"unescape it (in YAML use a | block scalar, not a quoted string with \\n)", ErrNotPEM, n)
		case bytes.Contains(data, []byte("-----END ")):
			return nil, nil, fmt.Errorf("%w: PEM block %d has lost its line breaks (all on one line); "+
				"keep the PEM text's line breaks, e.g. with a YAML | block scalar instead of > or a plain string", ErrNotPEM, n)
		default:
			return nil, nil, fmt.Errorf("%w: PEM block %d is truncated: it has no -----END line; copy the whole block", ErrNotPEM, n)
		}
	}
	lineEnd := bytes.IndexByte(data[end+1:], '\n')
	if lineEnd < 0 {
		lineEnd = len(data) - end - 2 // the END line is the last line, without a newline
	}
	cut := end + 1 + lineEnd + 1
	if bytes.Count(data[:cut], []byte("-----BEGIN ")) > 1 {
		return nil, nil, fmt.Errorf("%w: PEM block %d is truncated: the next -----BEGIN line comes before its -----END line; copy the whole block", ErrNotPEM, n)
	}
	return data[:cut], data[cut:], nil
}

func strayText(rest []byte, parsed int, want string) error {
	if parsed > 0 {
		return fmt.Errorf("%w: unexpected text after PEM block %d; remove everything that is not a PEM block", ErrNotPEM, parsed)
	}
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	line = bytes.TrimSpace(line)
	switch {
	case bytes.Contains(rest, []byte("-----BEGIN ")):
		return fmt.Errorf("%w: unexpected text before the first PEM block; remove everything that is not a PEM block", ErrNotPEM)
	case bytes.HasPrefix(line, []byte("/")) && !bytes.ContainsAny(line, " \t"):
		return fmt.Errorf("%w: no -----BEGIN %s----- block found; the value looks like a file path: paste the PEM text itself", ErrNotPEM, want)
	default:
		return fmt.Errorf("%w: no -----BEGIN %s----- block found; paste the PEM text, not a file name or base64 DER", ErrNotPEM, want)
	}
}

func certBlockHint(blockType string) string {
	switch {
	case strings.HasSuffix(blockType, "PRIVATE KEY"):
		return " (is a key in a certificate property?)"
	case strings.Contains(blockType, "CERTIFICATE REQUEST"):
		return " (a signing request, not a certificate: have the CA sign it and use the result)"
	case blockType == "TRUSTED CERTIFICATE":
		return " (OpenSSL's trusted-certificate format: convert it with `openssl x509 -in ca.pem -out ca-plain.pem`)"
	}
	return ""
}

package pki

import (
	"crypto/x509"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestVerifyChainRejectsStrayCertificates: every certificate after the first must lead to the bundle.
func TestVerifyChainRejectsStrayCertificates(t *testing.T) {
	root := mustCA(t, "root")
	inter, interKey, interPEM := raw(t, caTemplate("intermediate"), root.Cert, root.Key)
	inter2, inter2Key, inter2PEM := raw(t, caTemplate("intermediate-2"), inter, interKey)
	_, _, leafPEM := raw(t, leafTemplate("etcd", x509.ExtKeyUsageServerAuth), inter2, inter2Key)
	other := mustCA(t, "other")
	_, _, otherInterPEM := raw(t, caTemplate("other-intermediate"), other.Cert, other.Key)
	_, _, notCAPEM := raw(t, leafTemplate("not-a-ca", x509.ExtKeyUsageServerAuth), inter, interKey)
	bundle := []*x509.Certificate{root.Cert}

	for name, tc := range map[string]struct {
		pem     []byte
		bundle  []*x509.Certificate
		wantErr error
	}{
		"two intermediates in order":         {pem: concat(leafPEM, inter2PEM, interPEM), bundle: bundle},
		"two intermediates out of order":     {pem: concat(leafPEM, interPEM, inter2PEM), bundle: bundle},
		"intermediate also in the bundle":    {pem: concat(leafPEM, inter2PEM, interPEM), bundle: []*x509.Certificate{inter}},
		"the root appended too":              {pem: concat(leafPEM, inter2PEM, interPEM, root.CertPEM()), bundle: bundle},
		"an intermediate missing":            {pem: concat(leafPEM, interPEM), bundle: bundle, wantErr: ErrNotSignedByBundle},
		"another CA's intermediate appended": {pem: concat(leafPEM, inter2PEM, interPEM, otherInterPEM), bundle: bundle, wantErr: ErrNotInChain},
		"a leaf appended":                    {pem: concat(leafPEM, inter2PEM, interPEM, notCAPEM), bundle: bundle, wantErr: ErrNotInChain},
	} {
		t.Run(name, func(t *testing.T) {
			chain, err := ParseCertificates(tc.pem)
			require.NoError(t, err)
			err = VerifyChain(chain, tc.bundle, x509.ExtKeyUsageServerAuth)
			if tc.wantErr == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tc.wantErr)
		})
	}
}

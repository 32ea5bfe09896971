package s3

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSignatureMatchesAWSExample signs the "GET Bucket (List Objects)" example of AWS's Signature Version 4
// documentation for S3 and compares with the signature published there.
func TestSignatureMatchesAWSExample(t *testing.T) {
	u, _ := url.Parse("https://examplebucket.s3.amazonaws.com")
	c := &Client{Endpoint: u, Region: "us-east-1", AccessKey: "AKIAIOSFODNN7EXAMPLE", SecretKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
		Now: func() time.Time { return time.Date(2013, 5, 24, 0, 0, 0, 0, time.UTC) }}
	req, err := http.NewRequest(http.MethodGet, "https://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J", nil)
	require.NoError(t, err)
	c.sign(req, emptySHA256)
	auth := req.Header.Get("Authorization")
	require.True(t, strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, "), auth)
	require.True(t, strings.HasSuffix(auth, "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"), auth)
}

func TestURIEncode(t *testing.T) {
	require.Equal(t, "a%20b%2Bc~d_e-f.g%2Fh", uriEncode("a b+c~d_e-f.g/h", false))
	require.Equal(t, "/bucket/p/etcd-snapshot-x.db", uriEncodePath("/bucket/p/etcd-snapshot-x.db"))
	require.Equal(t, "list-type=2&prefix=a%2Fb", canonicalQuery(url.Values{"prefix": {"a/b"}, "list-type": {"2"}}))
}

// Package s3 is the small S3 client etcd_ctl needs for off-VM snapshot copies: put, get, delete and list objects
// under a prefix, signed with AWS Signature Version 4 (the AWS "Signature Version 4 signing process"
// documentation), path-style URLs (https://endpoint/bucket/key), which every S3-compatible store accepts. Only
// the standard library is used, so the shipped binary does not carry an SDK.
package s3

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"
)

// Client talks to one bucket.
type Client struct {
	Endpoint  *url.URL // scheme://host[:port]
	Bucket    string
	Region    string
	AccessKey string
	SecretKey string
	HTTP      *http.Client
	Now       func() time.Time
}

// New returns a client; caPEM, if set, is the only CA trusted for an https endpoint.
func New(endpoint, bucket, region, accessKey, secretKey, caPEM string) (*Client, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("endpoint %q must be an http:// or https:// URL", endpoint)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caPEM != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(caPEM)) {
			return nil, fmt.Errorf("the CA certificate is not PEM")
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	if region == "" {
		region = "us-east-1"
	}
	return &Client{Endpoint: u, Bucket: bucket, Region: region, AccessKey: accessKey, SecretKey: secretKey,
		HTTP: &http.Client{Transport: tr, Timeout: 30 * time.Minute}, Now: time.Now}, nil
}

func (c *Client) objectURL(key string, query url.Values) *url.URL {
	u := *c.Endpoint
	u.Path = "/" + c.Bucket
	if key != "" {
		u.Path += "/" + key
	}
	u.RawQuery = query.Encode()
	return &u
}

// Put uploads the file at path as key.
func (c *Client) Put(ctx context.Context, key, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.objectURL(key, nil).String(), f)
	if err != nil {
		return err
	}
	req.ContentLength = fi.Size()
	_, err = c.do(req, hex.EncodeToString(h.Sum(nil)))
	return err
}

// Get downloads key into w.
func (c *Client) Get(ctx context.Context, key string, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.objectURL(key, nil).String(), nil)
	if err != nil {
		return err
	}
	resp, err := c.doStream(req, emptySHA256)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(w, resp.Body)
	return err
}

// Delete removes key.
func (c *Client) Delete(ctx context.Context, key string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, c.objectURL(key, nil).String(), nil)
	if err != nil {
		return err
	}
	_, err = c.do(req, emptySHA256)
	return err
}

// List returns the keys under prefix (all pages).
func (c *Client) List(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	token := ""
	for {
		q := url.Values{"list-type": {"2"}, "prefix": {prefix}}
		if token != "" {
			q.Set("continuation-token", token)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.objectURL("", q).String(), nil)
		if err != nil {
			return nil, err
		}
		body, err := c.do(req, emptySHA256)
		if err != nil {
			return nil, err
		}
		var res struct {
			Contents              []struct{ Key string }
			IsTruncated           bool
			NextContinuationToken string
		}
		if err := xml.Unmarshal(body, &res); err != nil {
			return nil, fmt.Errorf("listing %s: %w", prefix, err)
		}
		for _, o := range res.Contents {
			keys = append(keys, o.Key)
		}
		if !res.IsTruncated || res.NextContinuationToken == "" {
			return keys, nil
		}
		token = res.NextContinuationToken
	}
}

const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

func (c *Client) do(req *http.Request, payloadSHA string) ([]byte, error) {
	resp, err := c.doStream(req, payloadSHA)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

func (c *Client) doStream(req *http.Request, payloadSHA string) (*http.Response, error) {
	c.sign(req, payloadSHA)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("s3 %s %s: %w", req.Method, req.URL.Path, err)
	}
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		var e struct{ Code, Message string }
		_ = xml.Unmarshal(b, &e)
		return nil, fmt.Errorf("s3 %s %s: HTTP %d %s %s", req.Method, req.URL.Path, resp.StatusCode, e.Code, e.Message)
	}
	return resp, nil
}

// sign adds the SigV4 Authorization header.
func (c *Client) sign(req *http.Request, payloadSHA string) {
	now := c.Now().UTC()
	amzDate, day := now.Format("20060102T150405Z"), now.Format("20060102")
	req.Header.Set("x-amz-date", amzDate)
	req.Header.Set("x-amz-content-sha256", payloadSHA)
	req.Host = req.URL.Host
	signed := []string{"host", "x-amz-content-sha256", "x-amz-date"}
	headers := map[string]string{"host": req.URL.Host, "x-amz-content-sha256": payloadSHA, "x-amz-date": amzDate}
	var canonHeaders strings.Builder
	for _, h := range signed {
		canonHeaders.WriteString(h + ":" + headers[h] + "\n")
	}
	canonical := strings.Join([]string{req.Method, uriEncodePath(req.URL.Path), canonicalQuery(req.URL.Query()),
		canonHeaders.String(), strings.Join(signed, ";"), payloadSHA}, "\n")
	scope := day + "/" + c.Region + "/s3/aws4_request"
	toSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hexSHA256(canonical)
	key := hmacSHA256([]byte("AWS4"+c.SecretKey), day)
	for _, part := range []string{c.Region, "s3", "aws4_request"} {
		key = hmacSHA256(key, part)
	}
	sig := hex.EncodeToString(hmacSHA256(key, toSign))
	req.Header.Set("Authorization", fmt.Sprintf("AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s", c.AccessKey, scope, strings.Join(signed, ";"), sig))
}

func hmacSHA256(key []byte, s string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return m.Sum(nil)
}

func hexSHA256(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// uriEncode percent-encodes as SigV4 requires: everything but A-Z a-z 0-9 - _ . ~ (and '/' in paths).
func uriEncode(s string, keepSlash bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch >= 'A' && ch <= 'Z' || ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_' || ch == '.' || ch == '~' || (keepSlash && ch == '/') {
			b.WriteByte(ch)
		} else {
			fmt.Fprintf(&b, "%%%02X", ch)
		}
	}
	return b.String()
}

func uriEncodePath(p string) string { return uriEncode(p, true) }

func canonicalQuery(q url.Values) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		vs := append([]string(nil), q[k]...)
		sort.Strings(vs)
		for _, v := range vs {
			parts = append(parts, uriEncode(k, false)+"="+uriEncode(v, false))
		}
	}
	return strings.Join(parts, "&")
}

// CreateBucket creates the client's bucket (tests and first-time setup; etcd_ctl expects it to exist).
func (c *Client) CreateBucket(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.objectURL("", nil).String(), nil)
	if err != nil {
		return err
	}
	_, err = c.do(req, emptySHA256)
	return err
}

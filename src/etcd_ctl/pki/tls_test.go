package pki

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestTLSHandshake proves generated material works with crypto/tls, which etcd uses: a server requiring client
// certificates signed by the generated CA accepts the generated client and peer certificates and refuses a
// client without a certificate or with one from another CA.
func TestTLSHandshake(t *testing.T) {
	for _, rsa := range []bool{false, true} {
		set, err := GenerateClusterSet(SetOptions{IPs: ips("127.0.0.1"), SharedPeerCA: false, RSA: rsa})
		require.NoError(t, err)
		other, err := GenerateClusterSet(SetOptions{IPs: ips("127.0.0.1")})
		require.NoError(t, err)

		for name, tc := range map[string]struct {
			serverCert, serverKey, clientCA []byte // what the server presents and trusts
			clientCert, clientKey           []byte // nil: no client certificate
			refusedBy                       string // "server", "client" or "" (accepted)
		}{
			"client certificate":     {serverCert: set.ServerCert, serverKey: set.ServerKey, clientCA: set.CACert, clientCert: set.ClientCert, clientKey: set.ClientKey},
			"server cert as client":  {serverCert: set.ServerCert, serverKey: set.ServerKey, clientCA: set.CACert, clientCert: set.ServerCert, clientKey: set.ServerKey},
			"peer to peer":           {serverCert: set.PeerCert, serverKey: set.PeerKey, clientCA: set.PeerCACert, clientCert: set.PeerCert, clientKey: set.PeerKey},
			"no client certificate":  {serverCert: set.ServerCert, serverKey: set.ServerKey, clientCA: set.CACert, refusedBy: "server"},
			"client from another CA": {serverCert: set.ServerCert, serverKey: set.ServerKey, clientCA: set.CACert, clientCert: other.ClientCert, clientKey: other.ClientKey, refusedBy: "server"},
			"peer CA is not the client CA": {serverCert: set.ServerCert, serverKey: set.ServerKey, clientCA: set.CACert,
				clientCert: set.PeerCert, clientKey: set.PeerKey, refusedBy: "server"},
			"server from another CA": {serverCert: other.ServerCert, serverKey: other.ServerKey, clientCA: set.CACert, clientCert: set.ClientCert, clientKey: set.ClientKey, refusedBy: "client"},
		} {
			if rsa {
				name = "rsa/" + name
			}
			t.Run(name, func(t *testing.T) {
				serverResult := serveOnce(t, tc.serverCert, tc.serverKey, tc.clientCA, func(addr string) error {
					// The client trusts the set's CA; for a peer connection the peer CA.
					roots := x509.NewCertPool()
					trust := set.CACert
					if string(tc.clientCA) == string(set.PeerCACert) {
						trust = set.PeerCACert
					}
					require.True(t, roots.AppendCertsFromPEM(trust))
					cfg := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
					if tc.clientCert != nil {
						pair, err := tls.X509KeyPair(tc.clientCert, tc.clientKey)
						require.NoError(t, err)
						cfg.Certificates = []tls.Certificate{pair}
					}
					conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
					if err != nil {
						return err
					}
					defer conn.Close()
					_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
					b, err := io.ReadAll(conn) // TLS 1.3 reports a refused client certificate on the first read
					if err == nil && string(b) != "ok" {
						err = io.ErrUnexpectedEOF
					}
					return err
				})
				switch tc.refusedBy {
				case "":
					require.NoError(t, serverResult.client)
					require.NoError(t, serverResult.server)
				case "server":
					require.Error(t, serverResult.server, "the server refuses the handshake")
					require.Error(t, serverResult.client)
				case "client":
					require.Error(t, serverResult.client, "the client refuses the server")
					var unknown x509.UnknownAuthorityError
					require.ErrorAs(t, serverResult.client, &unknown)
				}
			})
		}
	}
}

type handshakeResult struct{ server, client error }

// serveOnce listens on a free loopback port with a server that requires client certificates signed by clientCA,
// runs dial against it, and returns both sides' outcomes.
func serveOnce(t *testing.T, certPEM, keyPEM, clientCA []byte, dial func(addr string) error) handshakeResult {
	t.Helper()
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(clientCA))
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
	})
	require.NoError(t, err)
	defer ln.Close()

	serverErr := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			serverErr <- err
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if err := conn.(*tls.Conn).Handshake(); err != nil {
			serverErr <- err
			return
		}
		_, err = conn.Write([]byte("ok"))
		serverErr <- err
	}()
	clientErr := dial(ln.Addr().String())
	select {
	case err := <-serverErr:
		return handshakeResult{server: err, client: clientErr}
	case <-time.After(10 * time.Second):
		t.Fatal("the server never finished its handshake")
		return handshakeResult{}
	}
}

package cli

import (
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/pki"
)

type certsOptions struct {
	out          string
	dnsNames     []string
	ips          []string
	sharedPeerCA bool
	clientCN     string
	metrics      bool
}

func newCertsCmd() *cobra.Command {
	o := &certsOptions{}
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Generate CAs and server, client and peer certificates, plus a BOSH vars file",
		Long: `Generate everything etcd.require_ssl and etcd.peer_require_ssl need: a client CA, a peer CA, a server
certificate and a peer certificate covering the given DNS names and IPs (with serverAuth and clientAuth
usages), and a client certificate. Files are written to --out with keys 0600, together with vars.yml
(etcd_ca_cert, etcd_server_cert, ...) for ` + "`bosh deploy -l`" + `.`,
		Example: `  etcd_ctl certs --out ./certs --dns '*.etcd.service.cf.internal' --dns etcd.service.cf.internal
  etcd_ctl certs --out ./certs --ip 10.244.0.2 --ip 10.244.0.3 --ip 10.244.0.4`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var ips []net.IP
			for _, s := range o.ips {
				ip := net.ParseIP(s)
				if ip == nil {
					return fmt.Errorf("--ip %q is not an IP address", s)
				}
				ips = append(ips, ip)
			}
			if len(ips) == 0 && len(o.dnsNames) == 0 {
				return fmt.Errorf("give the hosts the certificates must cover with --dns and/or --ip")
			}
			set, err := pki.GenerateClusterSet(pki.SetOptions{DNSNames: o.dnsNames, IPs: ips, SharedPeerCA: o.sharedPeerCA, ClientCommonName: o.clientCN})
			if err != nil {
				return err
			}
			if err := writeSet(o.out, set); err != nil {
				return err
			}
			if o.metrics {
				if err := writeMetricsSet(o.out, set, ips, o.dnsNames); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote certificates and %s\n", filepath.Join(o.out, "vars.yml"))
			return nil
		},
	}
	cmd.Flags().StringVar(&o.out, "out", "certs", "directory to write to (created if missing)")
	cmd.Flags().StringSliceVar(&o.dnsNames, "dns", nil, "DNS name the server and peer certificates cover (repeatable; wildcards like *.etcd.service.cf.internal allowed)")
	cmd.Flags().StringSliceVar(&o.ips, "ip", nil, "IP address the server and peer certificates cover (repeatable)")
	cmd.Flags().BoolVar(&o.sharedPeerCA, "shared-peer-ca", false, "issue peer certificates from the client CA instead of a separate peer CA")
	cmd.Flags().StringVar(&o.clientCN, "client-common-name", "etcd-client", "common name of the client certificate")
	cmd.Flags().BoolVar(&o.metrics, "metrics", false, "also generate a metrics CA, a metrics server certificate for the same hosts and a scraper client certificate (etcd.metrics_scheme https), and add them to vars.yml")
	return cmd
}

func writeSet(dir string, s *pki.Set) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for name, content := range map[string][]byte{
		"ca.crt": s.CACert, "ca.key": s.CAKey, "server.crt": s.ServerCert, "server.key": s.ServerKey,
		"client.crt": s.ClientCert, "client.key": s.ClientKey, "peer-ca.crt": s.PeerCACert, "peer-ca.key": s.PeerCAKey,
		"peer.crt": s.PeerCert, "peer.key": s.PeerKey, "vars.yml": s.VarsYAML(),
	} {
		mode := os.FileMode(0o644)
		if filepath.Ext(name) == ".key" || name == "vars.yml" {
			mode = 0o600
		}
		if err := os.WriteFile(filepath.Join(dir, name), content, mode); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
	}
	return nil
}

// writeMetricsSet writes the metrics listener's CA, server and scraper certificates and rewrites vars.yml with
// their variables appended.
func writeMetricsSet(dir string, s *pki.Set, ips []net.IP, dnsNames []string) error {
	m, err := pki.GenerateMetricsSet(ips, dnsNames)
	if err != nil {
		return err
	}
	for name, content := range map[string][]byte{
		"metrics-ca.crt": m.CACert, "metrics-ca.key": m.CAKey, "metrics-server.crt": m.ServerCert, "metrics-server.key": m.ServerKey,
		"metrics-scraper.crt": m.ScraperCert, "metrics-scraper.key": m.ScraperKey, "vars.yml": append(s.VarsYAML(), m.VarsYAML()...),
	} {
		mode := os.FileMode(0o644)
		if filepath.Ext(name) == ".key" || name == "vars.yml" {
			mode = 0o600
		}
		if err := os.WriteFile(filepath.Join(dir, name), content, mode); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
	}
	return nil
}

package etcdserver

import (
	"fmt"
	"os"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/atomicfile"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
)

// WriteTLSFiles writes the TLS material of c's properties to the run dir, where BuildConfig points etcd.
// Files are written to a temporary name and renamed, so etcd never reads a half-written key; keys are 0600.
func WriteTLSFiles(c *config.Config) error {
	e := c.Etcd
	f := TLSPaths(c)
	type file struct {
		path, content string
		mode          os.FileMode
	}
	var files []file
	if e.RequireSSL {
		files = append(files,
			file{f.ClientCA, e.CACert, 0o644}, file{f.ServerCert, e.ServerCert, 0o644}, file{f.ServerKey, e.ServerKey.Value(), 0o600},
			file{f.ClientCert, e.ClientCert, 0o644}, file{f.ClientKey, e.ClientKey.Value(), 0o600})
	}
	if e.PeerRequireSSL {
		files = append(files, file{f.PeerCA, e.PeerCACert, 0o644}, file{f.PeerCert, e.PeerCert, 0o644}, file{f.PeerKey, e.PeerKey.Value(), 0o600})
	}
	if len(files) == 0 {
		return nil
	}
	if err := os.MkdirAll(c.Paths.TLSDir(), 0o700); err != nil {
		return fmt.Errorf("creating TLS dir: %w", err)
	}
	for _, fl := range files {
		if err := atomicfile.Write(fl.path, []byte(fl.content), fl.mode); err != nil {
			return err
		}
	}
	return nil
}

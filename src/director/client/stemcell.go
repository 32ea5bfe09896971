package client

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"os"
)

// WriteLightStemcell writes a light stemcell tarball — stemcell.MF and an empty image — which is all the local
// director needs: its VMs run on this host's root file system, so the stemcell only names the OS and version the
// manifests ask for.
func WriteLightStemcell(path, name, version, operatingSystem string) error {
	mf := fmt.Sprintf("---\nname: %s\nversion: '%s'\noperating_system: %s\nstemcell_formats: [warden-tgz]\napi_version: 3\ncloud_properties: {}\n",
		name, version, operatingSystem)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	for _, e := range []struct {
		name string
		body []byte
	}{{"stemcell.MF", []byte(mf)}, {"image", nil}} {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg}); err != nil {
			f.Close()
			return err
		}
		if _, err := tw.Write(e.body); err != nil {
			f.Close()
			return err
		}
	}
	if err := tw.Close(); err != nil {
		f.Close()
		return err
	}
	if err := gz.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Package devrelease makes a dev release tarball of this repository: the blobs first (package blobs), then the
// tarball (release.Build), under dev_releases/<name>/ with the bosh CLI's index.yml, so the next build gets the
// next dev version.
//
// It exists so that `scripts/create-release` and the tests that compile the release's packages build the tarball
// the same way, without the bosh CLI.
package devrelease

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"

	"github.com/etcd-release/etcd-release/src/releasetools/blobs"
	"github.com/etcd-release/etcd-release/src/releasetools/release"
)

// Options configures Create.
type Options struct {
	// Blobs configures the blob step; its RepoDir is set by Create.
	Blobs blobs.Options
	// Build is handed to release.Build.
	Build release.BuildOptions
	// Out is the tarball path; empty means dev_releases/<name>/<name>-<version>.tgz, recorded in index.yml.
	Out string
}

// Create syncs the blobs of the repository at repoDir and builds a dev release tarball from it. It returns the
// tarball's path and manifest.
func Create(ctx context.Context, repoDir string, o Options) (string, *release.Manifest, error) {
	o.Blobs.RepoDir = repoDir
	if _, err := blobs.Sync(ctx, o.Blobs); err != nil {
		return "", nil, err
	}
	out := o.Out
	tmpOut := out
	if tmpOut == "" {
		if err := os.MkdirAll(filepath.Join(repoDir, "dev_releases"), 0o755); err != nil {
			return "", nil, err
		}
		f, err := os.CreateTemp(filepath.Join(repoDir, "dev_releases"), ".build-*.tgz")
		if err != nil {
			return "", nil, err
		}
		f.Close()
		tmpOut = f.Name()
		defer os.Remove(tmpOut)
	}
	m, err := release.Build(repoDir, tmpOut, o.Build)
	if err != nil {
		return "", nil, err
	}
	if out != "" {
		return out, m, nil
	}
	dir := filepath.Join(repoDir, "dev_releases", m.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, err
	}
	out = filepath.Join(dir, fmt.Sprintf("%s-%s.tgz", m.Name, m.Version))
	if err := os.Rename(tmpOut, out); err != nil {
		return "", nil, err
	}
	if err := recordBuild(filepath.Join(dir, "index.yml"), m); err != nil {
		return "", nil, err
	}
	return out, m, nil
}

// recordBuild adds the version to dev_releases/<name>/index.yml in the bosh CLI's format
// (builds: {<id>: {version: ...}}, format-version: "2").
func recordBuild(indexPath string, m *release.Manifest) error {
	idx := struct {
		Builds        map[string]map[string]string `yaml:"builds"`
		FormatVersion string                       `yaml:"format-version"`
	}{Builds: map[string]map[string]string{}, FormatVersion: "2"}
	if data, err := os.ReadFile(indexPath); err == nil {
		if err := yaml.Unmarshal(data, &idx); err != nil {
			return fmt.Errorf("%s: %w", indexPath, err)
		}
		if idx.Builds == nil {
			idx.Builds = map[string]map[string]string{}
		}
	}
	sum := sha1.Sum([]byte(m.Name + "/" + m.Version))
	idx.Builds[hex.EncodeToString(sum[:])] = map[string]string{"version": m.Version}
	idx.FormatVersion = "2"
	data, err := yaml.Marshal(idx)
	if err != nil {
		return err
	}
	return os.WriteFile(indexPath, data, 0o644)
}

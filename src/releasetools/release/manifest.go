package release

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Manifest is a release tarball's release.MF.
type Manifest struct {
	Name               string       `yaml:"name"`
	Version            string       `yaml:"version"`
	CommitHash         string       `yaml:"commit_hash"`
	UncommittedChanges bool         `yaml:"uncommitted_changes"`
	Jobs               []JobRef     `yaml:"jobs"`
	Packages           []PackageRef `yaml:"packages"`
	License            *LicenseRef  `yaml:"license,omitempty"`
}

// JobRef is one entry of release.MF's jobs list.
type JobRef struct {
	Name        string `yaml:"name"`
	Version     string `yaml:"version"`
	Fingerprint string `yaml:"fingerprint"`
	// SHA1 is the digest of jobs/<name>.tgz: a bare SHA-1 hex, or "sha256:<hex>" (several may be joined by ';').
	SHA1     string   `yaml:"sha1"`
	Packages []string `yaml:"packages"`
}

// PackageRef is one entry of release.MF's packages list.
type PackageRef struct {
	Name         string   `yaml:"name"`
	Version      string   `yaml:"version"`
	Fingerprint  string   `yaml:"fingerprint"`
	SHA1         string   `yaml:"sha1"`
	Dependencies []string `yaml:"dependencies"`
}

// LicenseRef describes license.tgz.
type LicenseRef struct {
	Version     string `yaml:"version"`
	Fingerprint string `yaml:"fingerprint"`
	SHA1        string `yaml:"sha1"`
}

// ParseManifest parses a release.MF document.
func ParseManifest(data []byte) (*Manifest, error) {
	// Releases made by the old Ruby CLI tag some digests "!binary" (a Ruby YAML tag); YAML's own tag is "!!binary".
	data = binaryTagFixer.ReplaceAll(data, []byte("$1: !!binary"))
	var m Manifest
	if err := yaml.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("parsing release.MF: %w", err)
	}
	if m.Name == "" || m.Version == "" {
		return nil, fmt.Errorf("parsing release.MF: 'name' and 'version' are required")
	}
	var raw struct {
		CompiledPackages []any `yaml:"compiled_packages"`
	}
	if err := yaml.Unmarshal(data, &raw); err == nil && len(raw.CompiledPackages) > 0 {
		return nil, fmt.Errorf("release %s/%s: compiled releases are not supported", m.Name, m.Version)
	}
	return &m, nil
}

var binaryTagFixer = regexp.MustCompile(`(?m)^(\s*(?:-\s+)?(?:sha1|version|fingerprint)): !binary\b`)

// PackageSpec is packages/<pkg>/spec in a release source tree.
type PackageSpec struct {
	Name          string   `yaml:"name"`
	Dependencies  []string `yaml:"dependencies"`
	Files         []string `yaml:"files"`
	ExcludedFiles []string `yaml:"excluded_files"`
}

// ParsePackageSpec parses a package spec document.
func ParsePackageSpec(data []byte) (*PackageSpec, error) {
	var s PackageSpec
	if err := yaml.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("parsing package spec: %w", err)
	}
	if s.Name == "" {
		return nil, fmt.Errorf("parsing package spec: missing 'name'")
	}
	return &s, nil
}

// digester computes every digest algorithm a release may name, in one pass.
type digester struct {
	sha1, sha256, sha512 hash.Hash
	w                    io.Writer
}

func newDigester() *digester {
	d := &digester{sha1: sha1.New(), sha256: sha256.New(), sha512: sha512.New()}
	d.w = io.MultiWriter(d.sha1, d.sha256, d.sha512)
	return d
}

func (d *digester) Write(p []byte) (int, error) { return d.w.Write(p) }

func (d *digester) sums() map[string]string {
	return map[string]string{
		"sha1":   hex.EncodeToString(d.sha1.Sum(nil)),
		"sha256": hex.EncodeToString(d.sha256.Sum(nil)),
		"sha512": hex.EncodeToString(d.sha512.Sum(nil)),
	}
}

// DigestMismatchError reports content whose digest differs from the one its manifest records.
type DigestMismatchError struct {
	What     string // e.g. "job 'etcd'" or "package 'golang'"
	Expected string
	Actual   string
}

func (e *DigestMismatchError) Error() string {
	return fmt.Sprintf("%s: digest mismatch: release.MF says %s, content has %s", e.What, e.Expected, e.Actual)
}

// verifyDigest checks a BOSH digest string against computed sums. The string is one or more ';'-separated
// entries, each a bare SHA-1 hex or "<algorithm>:<hex>" (sha1, sha256, sha512); every entry must match.
func verifyDigest(what, expected string, sums map[string]string) error {
	if strings.TrimSpace(expected) == "" {
		return fmt.Errorf("%s: release.MF records no digest", what)
	}
	for _, entry := range strings.Split(expected, ";") {
		entry = strings.TrimSpace(entry)
		algo, want := "sha1", entry
		if i := strings.IndexByte(entry, ':'); i >= 0 {
			algo, want = entry[:i], entry[i+1:]
		}
		got, ok := sums[algo]
		if !ok {
			return fmt.Errorf("%s: unsupported digest algorithm %q", what, algo)
		}
		if !strings.EqualFold(got, want) {
			actual := got
			if algo != "sha1" {
				actual = algo + ":" + got
			}
			return &DigestMismatchError{What: what, Expected: entry, Actual: actual}
		}
	}
	return nil
}

package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Release is a release tarball opened by Read: its manifest, its jobs (fully parsed; they are small) and its
// packages (read from the tarball again when extracted).
type Release struct {
	Manifest Manifest
	// Jobs are in release.MF order.
	Jobs []*Job
	// Packages are in dependency order: every package after all of its dependencies.
	Packages []*Package
	path     string
}

// Job is one job of a release.
type Job struct {
	Name        string
	Version     string
	Fingerprint string
	SHA1        string
	Spec        *JobSpec
	Monit       []byte
	// Templates maps each source name in Spec.Templates to its content.
	Templates map[string][]byte
	// Packages are the packages the job's spec names (installed on its instances).
	Packages []string
}

// Package is one (source) package of a release.
type Package struct {
	Name         string
	Version      string
	Fingerprint  string
	SHA1         string
	Dependencies []string
	release      *Release
}

// Job returns the job called name.
func (r *Release) Job(name string) (*Job, bool) {
	for _, j := range r.Jobs {
		if j.Name == name {
			return j, true
		}
	}
	return nil, false
}

// Package returns the package called name.
func (r *Release) Package(name string) (*Package, bool) {
	for _, p := range r.Packages {
		if p.Name == name {
			return p, true
		}
	}
	return nil, false
}

// Path is the tarball the release was read from.
func (r *Release) Path() string { return r.path }

// Read opens a release tarball (made by Build or by `bosh create-release --tarball`) and checks it: every job and
// package archive release.MF lists is present with a matching digest (bare SHA-1 or "sha256:"), every job has
// its job.MF, monit file and every template job.MF lists, every package a job or another package names exists,
// and package dependencies have no cycle.
func Read(tarballPath string) (*Release, error) {
	r, err := read(tarballPath)
	if err != nil {
		return nil, fmt.Errorf("reading release %s: %w", tarballPath, err)
	}
	return r, nil
}

func read(tarballPath string) (*Release, error) {
	c, err := readContents(tarballPath)
	if err != nil {
		return nil, err
	}
	if c.manifest == nil {
		return nil, errors.New("no release.MF")
	}
	m, err := ParseManifest(c.manifest)
	if err != nil {
		return nil, err
	}
	r := &Release{Manifest: *m, path: tarballPath}
	if m.License != nil && c.licenseSum != nil {
		if err := verifyDigest("license", m.License.SHA1, c.licenseSum); err != nil {
			return nil, err
		}
	}
	pkgByName, err := r.addPackages(c.packageSum)
	if err != nil {
		return nil, err
	}
	if err := r.addJobs(c.jobData, pkgByName); err != nil {
		return nil, err
	}
	return r, nil
}

// tarballContents is what read needs from a release tarball in one pass: release.MF, the job archives and the
// digests of the package archives and the license.
type tarballContents struct {
	manifest   []byte
	jobData    map[string][]byte
	packageSum map[string]map[string]string
	licenseSum map[string]string
}

func readContents(tarballPath string) (*tarballContents, error) {
	c := &tarballContents{jobData: map[string][]byte{}, packageSum: map[string]map[string]string{}}
	err := walkTgz(tarballPath, func(name string, hdr *tar.Header, body io.Reader) error {
		switch {
		case name == "release.MF":
			b, err := io.ReadAll(body)
			c.manifest = b
			return err
		case strings.HasPrefix(name, "jobs/") && strings.HasSuffix(name, ".tgz"):
			b, err := io.ReadAll(body)
			c.jobData[strings.TrimSuffix(strings.TrimPrefix(name, "jobs/"), ".tgz")] = b
			return err
		case strings.HasPrefix(name, "packages/") && strings.HasSuffix(name, ".tgz"):
			d := newDigester()
			if _, err := io.Copy(d, body); err != nil {
				return err
			}
			c.packageSum[strings.TrimSuffix(strings.TrimPrefix(name, "packages/"), ".tgz")] = d.sums()
		case name == "license.tgz":
			d := newDigester()
			if _, err := io.Copy(d, body); err != nil {
				return err
			}
			c.licenseSum = d.sums()
		}
		return nil
	})
	return c, err
}

// addPackages checks every package release.MF lists against its archive's digest and adds them in dependency
// order; it returns them by name.
func (r *Release) addPackages(packageSum map[string]map[string]string) (map[string]*Package, error) {
	deps := map[string][]string{}
	pkgByName := map[string]*Package{}
	for _, ref := range r.Manifest.Packages {
		if _, dup := pkgByName[ref.Name]; dup {
			return nil, fmt.Errorf("package '%s' is listed twice", ref.Name)
		}
		sums, ok := packageSum[ref.Name]
		if !ok {
			return nil, fmt.Errorf("package '%s': packages/%s.tgz is missing", ref.Name, ref.Name)
		}
		if err := verifyDigest(fmt.Sprintf("package '%s'", ref.Name), ref.SHA1, sums); err != nil {
			return nil, err
		}
		p := &Package{Name: ref.Name, Version: ref.Version, Fingerprint: ref.Fingerprint, SHA1: ref.SHA1,
			Dependencies: ref.Dependencies, release: r}
		pkgByName[ref.Name] = p
		deps[ref.Name] = ref.Dependencies
	}
	order, err := TopoOrder(deps)
	if err != nil {
		return nil, err
	}
	for _, n := range order {
		r.Packages = append(r.Packages, pkgByName[n])
	}
	return pkgByName, nil
}

// addJobs checks every job release.MF lists against its archive's digest, parses it and checks that the release
// has the packages it needs.
func (r *Release) addJobs(jobData map[string][]byte, pkgByName map[string]*Package) error {
	for _, ref := range r.Manifest.Jobs {
		data, ok := jobData[ref.Name]
		if !ok {
			return fmt.Errorf("job '%s': jobs/%s.tgz is missing", ref.Name, ref.Name)
		}
		d := newDigester()
		d.Write(data)
		if err := verifyDigest(fmt.Sprintf("job '%s'", ref.Name), ref.SHA1, d.sums()); err != nil {
			return err
		}
		j, err := parseJobArchive(ref, data)
		if err != nil {
			return err
		}
		for _, p := range j.Packages {
			if _, ok := pkgByName[p]; !ok {
				return fmt.Errorf("job '%s' needs package '%s', which the release does not have", j.Name, p)
			}
		}
		r.Jobs = append(r.Jobs, j)
	}
	return nil
}

// parseJobArchive reads a job archive: job.MF, monit and the templates job.MF lists.
func parseJobArchive(ref JobRef, data []byte) (*Job, error) {
	files := map[string][]byte{}
	err := walkTgzReader(bytes.NewReader(data), func(name string, hdr *tar.Header, body io.Reader) error {
		b, err := io.ReadAll(body)
		files[name] = b
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("job '%s': %w", ref.Name, err)
	}
	mf, ok := files["job.MF"]
	if !ok {
		return nil, fmt.Errorf("job '%s' is missing job.MF", ref.Name)
	}
	spec, err := ParseJobSpec(mf)
	if err != nil {
		return nil, fmt.Errorf("job '%s': %w", ref.Name, err)
	}
	if spec.Name != ref.Name {
		return nil, fmt.Errorf("job '%s': job.MF names it '%s'", ref.Name, spec.Name)
	}
	monit, ok := files["monit"]
	if !ok {
		return nil, fmt.Errorf("job '%s' is missing its monit file", ref.Name)
	}
	j := &Job{Name: ref.Name, Version: ref.Version, Fingerprint: ref.Fingerprint, SHA1: ref.SHA1, Spec: spec,
		Monit: monit, Templates: map[string][]byte{}, Packages: spec.Packages}
	for _, src := range spec.TemplateSources() {
		body, ok := files[archiveName(path.Join("templates", src))]
		if !ok {
			return nil, fmt.Errorf("job '%s' is missing template '%s'", ref.Name, src)
		}
		j.Templates[src] = body
	}
	return j, nil
}

// Open streams the package's archive (packages/<name>.tgz) out of the release tarball. The caller closes it.
func (p *Package) Open() (io.ReadCloser, error) {
	f, err := os.Open(p.release.path)
	if err != nil {
		return nil, err
	}
	gz, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	tr := tar.NewReader(gz)
	want := "packages/" + p.Name + ".tgz"
	for {
		hdr, err := tr.Next()
		if err != nil {
			f.Close()
			if err == io.EOF {
				return nil, fmt.Errorf("package '%s': %s vanished from %s", p.Name, want, p.release.path)
			}
			return nil, err
		}
		if hdr.Typeflag == tar.TypeReg && archiveName(hdr.Name) == want {
			return struct {
				io.Reader
				io.Closer
			}{tr, f}, nil
		}
	}
}

// Extract writes the package's files (packaging and its sources, at their archive paths) under dir, checking the
// archive against the digest release.MF records. Every write goes through an os.Root at dir, so that no entry
// lands outside it, not even through a symlink an earlier entry made (`a -> .`, then `a/l -> ..`, then `a/l/x`).
// On error dir may hold a partial extraction.
func (p *Package) Extract(dir string) error {
	rc, err := p.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	d := newDigester()
	err = walkTgzReader(io.TeeReader(rc, d), func(name string, hdr *tar.Header, body io.Reader) error {
		return extractEntry(root, name, hdr, body)
	})
	if err != nil {
		return fmt.Errorf("extracting package '%s': %w", p.Name, err)
	}
	if _, err := io.Copy(d, rc); err != nil { // gzip padding after the tar end
		return err
	}
	return verifyDigest(fmt.Sprintf("package '%s'", p.Name), p.SHA1, d.sums())
}

// extractEntry writes one archive entry inside root. Names and symlink targets are checked lexically first (for
// a clear error); root refuses whatever still resolves outside it.
func extractEntry(root *os.Root, name string, hdr *tar.Header, body io.Reader) error {
	if name == "" {
		return nil
	}
	// name is normalized (archiveName roots it, so it cannot climb); the raw name is checked too, so that an
	// archive with "../x" is refused rather than quietly extracted as "x".
	raw := strings.TrimSuffix(strings.TrimPrefix(hdr.Name, "./"), "/")
	local := filepath.FromSlash(name)
	if !filepath.IsLocal(local) || !filepath.IsLocal(filepath.FromSlash(raw)) {
		return fmt.Errorf("entry %q escapes the package directory", hdr.Name)
	}
	escapes := func(err error) error {
		return fmt.Errorf("entry %q: %w (an archive entry may not reach outside the package directory, also not through a symlink)", hdr.Name, err)
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := root.MkdirAll(local, 0o755); err != nil {
			return escapes(err)
		}
		return nil
	case tar.TypeReg:
		if err := root.MkdirAll(filepath.Dir(local), 0o755); err != nil {
			return escapes(err)
		}
		mode := os.FileMode(0o644)
		if hdr.Mode&0o111 != 0 {
			mode = 0o755
		}
		f, err := root.OpenFile(local, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
		if err != nil {
			return escapes(err)
		}
		if _, err := io.Copy(f, body); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	case tar.TypeSymlink:
		if filepath.IsAbs(hdr.Linkname) || !filepath.IsLocal(filepath.Join(filepath.Dir(local), hdr.Linkname)) {
			return fmt.Errorf("symlink %q points outside the package directory", hdr.Name)
		}
		if err := root.MkdirAll(filepath.Dir(local), 0o755); err != nil {
			return escapes(err)
		}
		if err := root.Symlink(hdr.Linkname, local); err != nil {
			return escapes(err)
		}
		return nil
	default:
		return fmt.Errorf("entry %q: unsupported type %q", hdr.Name, hdr.Typeflag)
	}
}

// walkTgz calls fn for every entry of a gzipped tar file, with the entry name normalized (see archiveName).
func walkTgz(p string, fn func(name string, hdr *tar.Header, body io.Reader) error) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return walkTgzReader(f, fn)
}

func walkTgzReader(r io.Reader, fn func(name string, hdr *tar.Header, body io.Reader) error) error {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("not a gzipped tarball: %w", err)
	}
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return drainGzip(gz)
		}
		if err != nil {
			return err
		}
		if err := fn(archiveName(hdr.Name), hdr, tr); err != nil {
			return err
		}
	}
}

// drainGzip reads the gzip stream to its end. The tar reader stops at the end-of-archive blocks and never reaches
// the gzip trailer, so without this a flipped byte in the tail of the archive (tar padding, the end blocks) or in
// the trailer's CRC-32 goes unnoticed.
func drainGzip(gz *gzip.Reader) error {
	if _, err := io.Copy(io.Discard, gz); err != nil {
		return fmt.Errorf("corrupt gzip stream: %w", err)
	}
	return nil
}

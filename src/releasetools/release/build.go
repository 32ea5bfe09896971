package release

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// BuildOptions tunes Build.
type BuildOptions struct {
	// Name overrides the release name from config/final.yml.
	Name string
	// Version overrides the dev version Build would pick (the next "<final>+dev.N" after dev_releases/).
	Version string
	// SHA256 records digests as "sha256:<hex>" instead of bare SHA-1.
	SHA256 bool
}

// Build writes a dev release tarball of the release source tree at repoDir to outPath and returns its manifest.
//
// The tree has the layout `bosh create-release` reads: jobs/<job>/{spec,monit,templates/},
// packages/<pkg>/{spec,packaging}, src/, blobs/ with config/blobs.yml, and config/final.yml for the name. Each
// package's `files` globs are matched against src/ first and then against the blobs; a glob that matches nothing
// is an error naming the package and the glob. Jobs and packages get a fingerprint (a SHA-1 over their sorted file
// names, file digests and modes, and for packages their dependency names) that is also their version. The tarball
// is deterministic: the same tree gives the same bytes. Build never writes into repoDir.
func Build(repoDir, outPath string, opts BuildOptions) (*Manifest, error) {
	b := &builder{repo: repoDir, opts: opts}
	m, err := b.build(outPath)
	if err != nil {
		return nil, fmt.Errorf("building release from %s: %w", repoDir, err)
	}
	return m, nil
}

type builder struct {
	repo  string
	opts  BuildOptions
	tmp   string
	blobs map[string]blobEntry // blob path -> blobs.yml entry
}

type blobEntry struct {
	Size     int64  `yaml:"size"`
	ObjectID string `yaml:"object_id"`
	SHA      string `yaml:"sha"`
}

// fileEntry is one file going into a job or package archive.
type fileEntry struct {
	name   string // path inside the archive
	abs    string // where to read it
	mode   int64
	digest string // sha256 hex of the content
}

func (b *builder) build(outPath string) (*Manifest, error) {
	name, blobstorePath, err := b.releaseName()
	if err != nil {
		return nil, err
	}
	if err := b.loadBlobs(); err != nil {
		return nil, err
	}
	b.tmp, err = os.MkdirTemp("", "release-build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(b.tmp)

	m := &Manifest{Name: name, Jobs: []JobRef{}, Packages: []PackageRef{}}
	if m.Version = b.opts.Version; m.Version == "" {
		if m.Version, err = nextDevVersion(b.repo, name); err != nil {
			return nil, err
		}
	}
	m.CommitHash, m.UncommittedChanges = gitState(b.repo)

	pkgs, err := b.buildPackages(blobstorePath)
	if err != nil {
		return nil, err
	}
	m.Packages = pkgs
	known := map[string]bool{}
	for _, p := range pkgs {
		known[p.Name] = true
	}
	if m.Jobs, err = b.buildJobs(known); err != nil {
		return nil, err
	}
	if m.License, err = b.buildLicense(); err != nil {
		return nil, err
	}
	if err := b.writeRelease(m, outPath); err != nil {
		return nil, err
	}
	return m, nil
}

func (b *builder) releaseName() (name, blobstorePath string, err error) {
	var final struct {
		Name      string `yaml:"name"`
		FinalName string `yaml:"final_name"`
		Blobstore struct {
			Provider string `yaml:"provider"`
			Options  struct {
				BlobstorePath string `yaml:"blobstore_path"`
			} `yaml:"options"`
		} `yaml:"blobstore"`
	}
	data, err := os.ReadFile(filepath.Join(b.repo, "config", "final.yml"))
	switch {
	case err == nil:
		if err := yaml.Unmarshal(data, &final); err != nil {
			return "", "", fmt.Errorf("config/final.yml: %w", err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return "", "", err
	}
	name = b.opts.Name
	if name == "" {
		name = final.Name
	}
	if name == "" {
		name = final.FinalName
	}
	if name == "" {
		return "", "", errors.New("no release name: set 'name' in config/final.yml or BuildOptions.Name")
	}
	if final.Blobstore.Provider == "local" {
		blobstorePath = final.Blobstore.Options.BlobstorePath
	}
	return name, blobstorePath, nil
}

func (b *builder) loadBlobs() error {
	b.blobs = map[string]blobEntry{}
	data, err := os.ReadFile(filepath.Join(b.repo, "config", "blobs.yml"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := yaml.Unmarshal(data, &b.blobs); err != nil {
		return fmt.Errorf("config/blobs.yml: %w", err)
	}
	if b.blobs == nil {
		b.blobs = map[string]blobEntry{}
	}
	return nil
}

// subdirs lists the directories directly under dir, sorted; a missing dir has none.
func subdirs(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// listFiles maps every regular file under root (following symlinks to files) to its absolute path, keyed by its
// slash-separated path relative to root.
func listFiles(root string) (map[string]string, error) {
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == root {
				return fs.SkipAll
			}
			return err
		}
		if d.IsDir() {
			if d.Name() == ".git" {
				return fs.SkipDir
			}
			return nil
		}
		st, err := os.Stat(p)
		if err != nil || !st.Mode().IsRegular() {
			return nil // dangling symlinks and special files are not package content
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		out[filepath.ToSlash(rel)] = p
		return nil
	})
	return out, err
}

// packageSources is what building the packages reads once: the files under src/ and blobs/ and every blob path
// (local or listed in config/blobs.yml).
type packageSources struct {
	srcFiles, localBlobs map[string]string
	blobPaths            map[string]bool
	blobstorePath        string
}

// buildPackages builds every package under packages/ (sorted by name) and returns their release.MF entries.
func (b *builder) buildPackages(blobstorePath string) ([]PackageRef, error) {
	specs, dirs, err := b.readPackageSpecs()
	if err != nil {
		return nil, err
	}
	src := packageSources{blobstorePath: blobstorePath, blobPaths: map[string]bool{}}
	if src.srcFiles, err = listFiles(filepath.Join(b.repo, "src")); err != nil {
		return nil, err
	}
	if src.localBlobs, err = listFiles(filepath.Join(b.repo, "blobs")); err != nil {
		return nil, err
	}
	for p := range src.localBlobs {
		src.blobPaths[p] = true
	}
	for p := range b.blobs {
		src.blobPaths[p] = true
	}
	var refs []PackageRef
	for _, pkgName := range slices.Sorted(maps.Keys(specs)) {
		ref, err := b.buildPackage(specs[pkgName], filepath.Join(b.repo, "packages", dirs[pkgName]), src)
		if err != nil {
			return nil, err
		}
		refs = append(refs, ref)
	}
	return refs, nil
}

// readPackageSpecs reads packages/*/spec, by package name with the directory each came from, and checks the
// dependencies (unknown names, cycles); release.MF lists packages by name like the bosh CLI.
func (b *builder) readPackageSpecs() (map[string]*PackageSpec, map[string]string, error) {
	names, err := subdirs(filepath.Join(b.repo, "packages"))
	if err != nil {
		return nil, nil, err
	}
	specs := map[string]*PackageSpec{}
	deps := map[string][]string{}
	dirs := map[string]string{}
	for _, dir := range names {
		data, err := os.ReadFile(filepath.Join(b.repo, "packages", dir, "spec"))
		if err != nil {
			return nil, nil, fmt.Errorf("package %s: %w", dir, err)
		}
		s, err := ParsePackageSpec(data)
		if err != nil {
			return nil, nil, fmt.Errorf("package %s: %w", dir, err)
		}
		if _, dup := specs[s.Name]; dup {
			return nil, nil, fmt.Errorf("package '%s' is defined twice", s.Name)
		}
		specs[s.Name] = s
		deps[s.Name] = s.Dependencies
		dirs[s.Name] = dir
	}
	if _, err := TopoOrder(deps); err != nil {
		return nil, nil, err
	}
	return specs, dirs, nil
}

// buildPackage writes one package archive (its packaging script, then the matched files in path order) and
// returns its release.MF entry; the version is the fingerprint.
func (b *builder) buildPackage(s *PackageSpec, dir string, src packageSources) (PackageRef, error) {
	pkgName := s.Name
	packaging := filepath.Join(dir, "packaging")
	if _, err := os.Stat(packaging); err != nil {
		return PackageRef{}, fmt.Errorf("package '%s': missing packaging script: %w", pkgName, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "pre_packaging")); err == nil {
		return PackageRef{}, fmt.Errorf("package '%s': pre_packaging scripts are not supported", pkgName)
	}
	pe, err := b.entry("packaging", packaging, "")
	if err != nil {
		return PackageRef{}, fmt.Errorf("package '%s': %w", pkgName, err)
	}
	files := []fileEntry{pe}
	matched, err := b.matchPackageFiles(s, src.srcFiles, src.blobPaths)
	if err != nil {
		return PackageRef{}, err
	}
	if _, ok := matched["packaging"]; ok {
		return PackageRef{}, fmt.Errorf("package '%s': its 'files' must not include a file named 'packaging'", pkgName)
	}
	for _, rel := range slices.Sorted(maps.Keys(matched)) {
		var e fileEntry
		if abs, ok := src.srcFiles[rel]; ok && matched[rel] == "src" {
			e, err = b.entry(rel, abs, "")
		} else {
			e, err = b.blobFileEntry(rel, src.localBlobs, src.blobstorePath)
		}
		if err != nil {
			return PackageRef{}, fmt.Errorf("package '%s': %w", pkgName, err)
		}
		files = append(files, e)
	}
	fp := fingerprint("package", files, slices.Sorted(slices.Values(s.Dependencies)))
	digest, err := b.writeArchive(filepath.Join(b.tmp, "packages", pkgName+".tgz"), files)
	if err != nil {
		return PackageRef{}, fmt.Errorf("package '%s': %w", pkgName, err)
	}
	deps := s.Dependencies
	if deps == nil {
		deps = []string{}
	}
	return PackageRef{Name: pkgName, Version: fp, Fingerprint: fp, SHA1: digest, Dependencies: deps}, nil
}

// matchPackageFiles resolves a package's `files` globs (src/ first, then blobs) minus its `excluded_files`;
// the result maps each matched path to "src" or "blob".
func (b *builder) matchPackageFiles(s *PackageSpec, srcFiles map[string]string, blobPaths map[string]bool) (map[string]string, error) {
	matched := map[string]string{}
	for _, pattern := range s.Files {
		n := 0
		for rel := range srcFiles {
			if matchGlob(pattern, rel) {
				matched[rel] = "src"
				n++
			}
		}
		for rel := range blobPaths {
			if matchGlob(pattern, rel) {
				if _, fromSrc := matched[rel]; !fromSrc {
					matched[rel] = "blob"
				}
				n++
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("package '%s': files pattern '%s' matches no file in src/ or blobs/", s.Name, pattern)
		}
	}
	for _, pattern := range s.ExcludedFiles {
		for rel := range matched {
			if matchGlob(pattern, rel) {
				delete(matched, rel)
			}
		}
	}
	return matched, nil
}

// blobFileEntry finds a blob in blobs/ (or else in a local blobstore) and checks it against config/blobs.yml.
func (b *builder) blobFileEntry(rel string, localBlobs map[string]string, blobstorePath string) (fileEntry, error) {
	meta, listed := b.blobs[rel]
	abs, ok := localBlobs[rel]
	if !ok {
		if !listed || meta.ObjectID == "" || blobstorePath == "" {
			return fileEntry{}, fmt.Errorf("blob '%s' is not in blobs/ (run `bosh sync-blobs`)", rel)
		}
		abs = filepath.Join(blobstorePath, meta.ObjectID)
	}
	want := ""
	if listed {
		want = meta.SHA
	}
	return b.entry(rel, abs, want)
}

// entry describes one archive file; wantDigest, when set, is a BOSH digest the content must match.
func (b *builder) entry(name, abs, wantDigest string) (fileEntry, error) {
	f, err := os.Open(abs)
	if err != nil {
		return fileEntry{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fileEntry{}, err
	}
	d := newDigester()
	if _, err := io.Copy(d, f); err != nil {
		return fileEntry{}, err
	}
	sums := d.sums()
	if wantDigest != "" {
		if err := verifyDigest("blob '"+name+"'", wantDigest, sums); err != nil {
			return fileEntry{}, err
		}
	}
	mode := int64(0o644)
	if st.Mode()&0o111 != 0 {
		mode = 0o755
	}
	return fileEntry{name: name, abs: abs, mode: mode, digest: sums["sha256"]}, nil
}

// fingerprint is a deterministic SHA-1 over the kind, the sorted file names with their digests and modes, and the
// sorted dependency names.
func fingerprint(kind string, files []fileEntry, deps []string) string {
	sorted := slices.Clone(files)
	slices.SortFunc(sorted, func(a, c fileEntry) int { return strings.Compare(a.name, c.name) })
	h := sha1.New()
	fmt.Fprintf(h, "v1 %s\n", kind)
	for _, f := range sorted {
		fmt.Fprintf(h, "file %s %s %o\n", f.name, f.digest, f.mode)
	}
	for _, d := range deps {
		fmt.Fprintf(h, "dependency %s\n", d)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// writeArchive writes files (sorted by name) as a deterministic tgz and returns its digest as release.MF records it.
func (b *builder) writeArchive(dest string, files []fileEntry) (string, error) {
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return "", err
	}
	out, err := os.Create(dest)
	if err != nil {
		return "", err
	}
	defer out.Close()
	d := newDigester()
	t := newTgzWriter(io.MultiWriter(out, d))
	if err := t.root(); err != nil {
		return "", err
	}
	sorted := slices.Clone(files)
	slices.SortFunc(sorted, func(a, c fileEntry) int { return strings.Compare(a.name, c.name) })
	for _, f := range sorted {
		if err := t.addPath(f.name, f.abs, f.mode); err != nil {
			return "", err
		}
	}
	if err := t.close(); err != nil {
		return "", err
	}
	if err := out.Close(); err != nil {
		return "", err
	}
	return b.formatDigest(d.sums()), nil
}

func (b *builder) formatDigest(sums map[string]string) string {
	if b.opts.SHA256 {
		return "sha256:" + sums["sha256"]
	}
	return sums["sha1"]
}

func (b *builder) buildJobs(packages map[string]bool) ([]JobRef, error) {
	names, err := subdirs(filepath.Join(b.repo, "jobs"))
	if err != nil {
		return nil, err
	}
	var refs []JobRef
	seen := map[string]bool{}
	for _, dir := range names {
		jobDir := filepath.Join(b.repo, "jobs", dir)
		specPath := filepath.Join(jobDir, "spec")
		data, err := os.ReadFile(specPath)
		if err != nil {
			return nil, fmt.Errorf("job %s: %w", dir, err)
		}
		spec, err := ParseJobSpec(data)
		if err != nil {
			return nil, fmt.Errorf("job %s: %w", dir, err)
		}
		if seen[spec.Name] {
			return nil, fmt.Errorf("job '%s' is defined twice", spec.Name)
		}
		seen[spec.Name] = true
		for _, p := range spec.Packages {
			if !packages[p] {
				return nil, fmt.Errorf("job '%s' needs package '%s', which the release does not have", spec.Name, p)
			}
		}
		files := []fileEntry{}
		e, err := b.entry("job.MF", specPath, "")
		if err != nil {
			return nil, fmt.Errorf("job '%s': %w", spec.Name, err)
		}
		files = append(files, e)
		monit := filepath.Join(jobDir, "monit")
		if _, err := os.Stat(monit); err != nil {
			return nil, fmt.Errorf("job '%s' is missing its monit file: %w", spec.Name, err)
		}
		if e, err = b.entry("monit", monit, ""); err != nil {
			return nil, fmt.Errorf("job '%s': %w", spec.Name, err)
		}
		files = append(files, e)
		for _, src := range spec.TemplateSources() {
			if !filepath.IsLocal(src) {
				return nil, fmt.Errorf("job '%s': template '%s' is outside templates/", spec.Name, src)
			}
			abs := filepath.Join(jobDir, "templates", filepath.FromSlash(src))
			if _, err := os.Stat(abs); err != nil {
				return nil, fmt.Errorf("job '%s' is missing template '%s': %w", spec.Name, src, err)
			}
			e, err := b.entry(path.Join("templates", src), abs, "")
			if err != nil {
				return nil, fmt.Errorf("job '%s': %w", spec.Name, err)
			}
			files = append(files, e)
		}
		fp := fingerprint("job", files, nil)
		digest, err := b.writeArchive(filepath.Join(b.tmp, "jobs", spec.Name+".tgz"), files)
		if err != nil {
			return nil, fmt.Errorf("job '%s': %w", spec.Name, err)
		}
		pkgs := spec.Packages
		if pkgs == nil {
			pkgs = []string{}
		}
		refs = append(refs, JobRef{Name: spec.Name, Version: fp, Fingerprint: fp, SHA1: digest, Packages: pkgs})
	}
	slices.SortFunc(refs, func(a, c JobRef) int { return strings.Compare(a.Name, c.Name) })
	return refs, nil
}

func (b *builder) buildLicense() (*LicenseRef, error) {
	var files []fileEntry
	for _, n := range []string{"LICENSE", "NOTICE"} {
		abs := filepath.Join(b.repo, n)
		if _, err := os.Stat(abs); err != nil {
			continue
		}
		e, err := b.entry(n, abs, "")
		if err != nil {
			return nil, err
		}
		files = append(files, e)
	}
	if len(files) == 0 {
		return nil, nil
	}
	fp := fingerprint("license", files, nil)
	digest, err := b.writeArchive(filepath.Join(b.tmp, "license.tgz"), files)
	if err != nil {
		return nil, fmt.Errorf("license: %w", err)
	}
	return &LicenseRef{Version: fp, Fingerprint: fp, SHA1: digest}, nil
}

// writeRelease writes the outer tarball: release.MF, license.tgz, jobs/, packages/.
func (b *builder) writeRelease(m *Manifest, outPath string) error {
	var mfBuf bytes.Buffer
	enc := yaml.NewEncoder(&mfBuf)
	enc.SetIndent(2)
	if err := enc.Encode(m); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	mf := mfBuf.Bytes()
	tmpOut := outPath + ".partial"
	out, err := os.Create(tmpOut)
	if err != nil {
		return err
	}
	defer os.Remove(tmpOut)
	defer out.Close()
	t := newTgzWriter(out)
	if err := t.root(); err != nil {
		return err
	}
	if err := t.addFile("release.MF", 0o644, int64(len(mf)), bytes.NewReader(mf)); err != nil {
		return err
	}
	if m.License != nil {
		if err := t.addPath("license.tgz", filepath.Join(b.tmp, "license.tgz"), 0o644); err != nil {
			return err
		}
	}
	for _, j := range m.Jobs {
		if err := t.addPath("jobs/"+j.Name+".tgz", filepath.Join(b.tmp, "jobs", j.Name+".tgz"), 0o644); err != nil {
			return err
		}
	}
	for _, p := range m.Packages {
		if err := t.addPath("packages/"+p.Name+".tgz", filepath.Join(b.tmp, "packages", p.Name+".tgz"), 0o644); err != nil {
			return err
		}
	}
	if err := t.close(); err != nil {
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmpOut, outPath)
}

var devVersionRE = regexp.MustCompile(`^(.+)\+dev\.(\d+)$`)

// nextDevVersion picks the version `bosh create-release` would: "<latest final>+dev.<N+1>", where the latest
// final comes from releases/<name>/index.yml ("0" when there is none) and N is the highest dev build of that final
// in dev_releases/<name>/index.yml.
func nextDevVersion(repo, name string) (string, error) {
	base := "0"
	finals, err := indexVersions(filepath.Join(repo, "releases", name, "index.yml"))
	if err != nil {
		return "", err
	}
	for _, v := range finals {
		if compareVersions(v, base) > 0 {
			base = v
		}
	}
	devs, err := indexVersions(filepath.Join(repo, "dev_releases", name, "index.yml"))
	if err != nil {
		return "", err
	}
	n := 0
	for _, v := range devs {
		if m := devVersionRE.FindStringSubmatch(v); m != nil && m[1] == base {
			if i, _ := strconv.Atoi(m[2]); i > n {
				n = i
			}
		}
	}
	return fmt.Sprintf("%s+dev.%d", base, n+1), nil
}

func indexVersions(indexPath string) ([]string, error) {
	data, err := os.ReadFile(indexPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var idx struct {
		Builds map[string]struct {
			Version any `yaml:"version"`
		} `yaml:"builds"`
	}
	if err := yaml.Unmarshal(data, &idx); err != nil {
		return nil, fmt.Errorf("%s: %w", indexPath, err)
	}
	var out []string
	for _, b := range idx.Builds {
		if b.Version != nil {
			out = append(out, fmt.Sprint(b.Version))
		}
	}
	return out, nil
}

// compareVersions compares dotted versions segment by segment, numerically where both segments are numbers.
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y string
		if i < len(as) {
			x = as[i]
		}
		if i < len(bs) {
			y = bs[i]
		}
		xi, xerr := strconv.Atoi(x)
		yi, yerr := strconv.Atoi(y)
		switch {
		case xerr == nil && yerr == nil && xi != yi:
			if xi < yi {
				return -1
			}
			return 1
		case (xerr != nil || yerr != nil) && x != y:
			return strings.Compare(x, y)
		}
	}
	return 0
}

// gitState is the commit_hash and uncommitted_changes of release.MF: the short HEAD commit and whether the
// release directory has uncommitted changes; "unknown" and false outside a git work tree.
func gitState(repo string) (string, bool) {
	out, err := exec.Command("git", "-C", repo, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown", false
	}
	hash := strings.TrimSpace(string(out))
	status, err := exec.Command("git", "-C", repo, "status", "--porcelain", "--", ".").Output()
	if err != nil {
		return hash, false
	}
	return hash, len(bytes.TrimSpace(status)) > 0
}

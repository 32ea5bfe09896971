package blobs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// ModulesBlob is the module cache blob's path under blobs/. The etcd_ctl package lists it in its `files`.
const ModulesBlob = "etcd_ctl/go-modules.tgz"

// SuiteModulesBlob and SuiteSourceBlob feed the acceptance-tests package, which compiles the acceptance suite
// for the errand: the modules the suite's test binary needs, and the suite's own Go files (acceptance-tests/ is a
// top-level directory, and BOSH package files can only come from src/ and blobs/).
const (
	SuiteModulesBlob = "acceptance-tests/go-modules.tgz"
	SuiteSourceBlob  = "acceptance-tests/suite-source.tgz"
	suiteDir         = "acceptance-tests"
)

// toolchainDir is the blobs/ directory of the Go toolchain blob; every blob under it belongs to this package.
const toolchainDir = "golang"

// DefaultMainPackages are the commands whose modules the modules blob holds (etcd-test-helper needs none).
var DefaultMainPackages = []string{"./src/etcd_ctl"}

// Options configures Sync.
type Options struct {
	// RepoDir is the release repository (go.mod, config/, blobs/). Required.
	RepoDir string
	// Go is the go command; empty means "go" from PATH. Its GOROOT is the toolchain put into the golang blob and
	// its GOMODCACHE is where modules are copied from.
	Go string
	// MainPackages are the commands whose modules go into the modules blob; empty means DefaultMainPackages.
	MainPackages []string
	// CacheDir keeps the input keys of built blobs; empty means RepoDir/.cache/release-blobs.
	CacheDir string
	// Logf reports progress; nil discards it.
	Logf func(format string, args ...any)
}

// Blob is one blob Sync made or found up to date.
type Blob struct {
	// Path is relative to blobs/ (the key in config/blobs.yml).
	Path   string
	Size   int64
	SHA    string
	Reused bool
}

// Sync makes the toolchain and modules blobs under RepoDir/blobs (unless their inputs are unchanged since they
// were made), removes toolchain blobs of other Go versions, and records the blobs in config/blobs.yml.
func Sync(ctx context.Context, o Options) ([]Blob, error) {
	if o.RepoDir == "" {
		return nil, errors.New("blobs: RepoDir is required")
	}
	if o.Go == "" {
		o.Go = "go"
	}
	if len(o.MainPackages) == 0 {
		o.MainPackages = DefaultMainPackages
	}
	if o.CacheDir == "" {
		o.CacheDir = filepath.Join(o.RepoDir, ".cache", "release-blobs")
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	env, err := goEnv(ctx, o)
	if err != nil {
		return nil, err
	}
	tool, err := syncToolchain(o, env)
	if err != nil {
		return nil, fmt.Errorf("making the Go toolchain blob: %w", err)
	}
	mods, err := syncModules(ctx, o, env, ModulesBlob, o.MainPackages, false)
	if err != nil {
		return nil, fmt.Errorf("making the Go modules blob: %w", err)
	}
	made := []Blob{tool, mods}
	// The acceptance suite's blobs, when the repository has the suite.
	if st, err := os.Stat(filepath.Join(o.RepoDir, suiteDir)); err == nil && st.IsDir() {
		suiteMods, err := syncModules(ctx, o, env, SuiteModulesBlob, []string{"./" + suiteDir}, true)
		if err != nil {
			return nil, fmt.Errorf("making the acceptance suite's Go modules blob: %w", err)
		}
		src, err := syncSuiteSource(o)
		if err != nil {
			return nil, fmt.Errorf("making the acceptance suite's source blob: %w", err)
		}
		made = append(made, suiteMods, src)
	}

	indexPath := filepath.Join(o.RepoDir, "config", "blobs.yml")
	idx, err := ReadIndex(indexPath)
	if err != nil {
		return nil, err
	}
	for k := range idx {
		if path.Dir(k) == toolchainDir && k != tool.Path {
			delete(idx, k)
		}
	}
	for _, b := range made {
		old := idx[b.Path]
		if old.SHA != b.SHA || old.Size != b.Size {
			old = IndexEntry{} // a new blob has not been uploaded yet
		}
		idx[b.Path] = IndexEntry{Size: b.Size, SHA: b.SHA, ObjectID: old.ObjectID}
	}
	if err := WriteIndex(indexPath, idx); err != nil {
		return nil, err
	}
	// Toolchain blobs of other Go versions are stale: remove them so the golang-1-linux glob matches one file.
	stale, _ := filepath.Glob(filepath.Join(o.RepoDir, "blobs", toolchainDir, "*"))
	for _, p := range stale {
		if filepath.Base(p) != path.Base(tool.Path) {
			o.Logf("removing stale blob %s", p)
			if err := os.RemoveAll(p); err != nil {
				return nil, err
			}
		}
	}
	return made, nil
}

type goEnvironment struct {
	GOROOT     string
	GOVERSION  string
	GOMODCACHE string
	GOARCH     string
}

func goEnv(ctx context.Context, o Options) (goEnvironment, error) {
	var env goEnvironment
	cmd := exec.CommandContext(ctx, o.Go, "env", "-json", "GOROOT", "GOVERSION", "GOMODCACHE", "GOARCH")
	cmd.Dir = o.RepoDir
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local")
	out, err := cmd.Output()
	if err != nil {
		return env, fmt.Errorf("go env: %w%s", err, stderrOf(err))
	}
	if err := json.Unmarshal(out, &env); err != nil {
		return env, fmt.Errorf("go env: %w", err)
	}
	if env.GOROOT == "" || env.GOVERSION == "" || env.GOMODCACHE == "" {
		return env, fmt.Errorf("go env: GOROOT, GOVERSION or GOMODCACHE is empty: %s", out)
	}
	return env, nil
}

// ToolchainBlobPath is the blob path of a Go toolchain, named like the upstream archive
// (golang/go1.26.8.linux-amd64.tar.gz).
func ToolchainBlobPath(goVersion, goarch string) string {
	return path.Join(toolchainDir, goVersion+".linux-"+goarch+".tar.gz")
}

func syncToolchain(o Options, env goEnvironment) (Blob, error) {
	b := Blob{Path: ToolchainBlobPath(env.GOVERSION, env.GOARCH)}
	entries, err := collect(env.GOROOT, "go", func(rel string, d fs.DirEntry) bool {
		return d.Name() == ".git"
	})
	if err != nil {
		return b, err
	}
	// The key covers every file's name, mode, size and modification time: an in-place toolchain upgrade changes it.
	h := sha256.New()
	fmt.Fprintf(h, "toolchain v1 %s %s\n", env.GOVERSION, env.GOARCH)
	for _, e := range entries {
		fmt.Fprintf(h, "%s %v %s", e.name, e.mode, e.link)
		if e.src != "" {
			st, err := os.Stat(e.src)
			if err != nil {
				return b, err
			}
			fmt.Fprintf(h, " %d %d", st.Size(), st.ModTime().UnixNano())
		}
		fmt.Fprintln(h)
	}
	return buildCached(o, b, hex.EncodeToString(h.Sum(nil)), entries)
}

// syncModules makes the blob at blobPath: go.mod, go.sum and the module download cache that building pkgs (and,
// with tests, their test binaries) needs.
func syncModules(ctx context.Context, o Options, env goEnvironment, blobPath string, pkgs []string, tests bool) (Blob, error) {
	b := Blob{Path: blobPath}
	listFlags := []string{"list", "-deps"}
	if tests {
		listFlags = append(listFlags, "-test")
	}
	goMod, err := os.ReadFile(filepath.Join(o.RepoDir, "go.mod"))
	if err != nil {
		return b, err
	}
	goSum, err := os.ReadFile(filepath.Join(o.RepoDir, "go.sum"))
	if err != nil {
		return b, err
	}
	// The modules the commands' packages come from: listed from this machine's cache, no network.
	listArgs := append(append(slices.Clone(listFlags), "-f", "{{with .Module}}{{if not .Main}}{{.Path}}@{{.Version}}{{end}}{{end}}"), pkgs...)
	mods, err := runGo(ctx, o, o.RepoDir, offlineEnv(env.GOMODCACHE), listArgs...)
	if err != nil {
		return b, err
	}
	modList := slices.Compact(slices.Sorted(slices.Values(strings.Fields(mods))))
	h := sha256.New()
	fmt.Fprintf(h, "modules v2 %s\n", env.GOVERSION)
	fmt.Fprintf(h, "go.mod %x\ngo.sum %x\n", sha256.Sum256(goMod), sha256.Sum256(goSum))
	fmt.Fprintf(h, "packages %s tests %v\nmodules %s\n", strings.Join(pkgs, " "), tests, strings.Join(modList, " "))
	key := hex.EncodeToString(h.Sum(nil))
	if reused, ok := cached(o, b, key); ok {
		return reused, nil
	}

	// Load the commands again with an empty module cache whose only proxy is this machine's download cache: the go
	// command fetches exactly what building them needs (module zips and the go.mod files of the module graph).
	tmp, err := os.MkdirTemp("", "release-blobs-modcache-")
	if err != nil {
		return b, err
	}
	defer os.RemoveAll(tmp)
	modcache := filepath.Join(tmp, "modcache")
	fill := []string{
		"GOMODCACHE=" + modcache,
		"GOPROXY=file://" + filepath.ToSlash(filepath.Join(env.GOMODCACHE, "cache", "download")),
		"GOSUMDB=off", // go.sum is complete; nothing is looked up
		// -buildvcs=false: otherwise the go command derives the main module's pseudo-version from the checkout's
		// commit and records it as a download (.info), so the blob would change with every commit.
		"GOFLAGS=-mod=readonly -modcacherw -buildvcs=false",
		"GOTOOLCHAIN=local",
		"GOWORK=off",
	}
	o.Logf("collecting the modules of %s", strings.Join(pkgs, " "))
	if _, err := runGo(ctx, o, o.RepoDir, fill, append(slices.Clone(listFlags), pkgs...)...); err != nil {
		return b, err
	}
	entries := []entry{
		{name: "go.mod", src: filepath.Join(o.RepoDir, "go.mod"), mode: 0o644},
		{name: "go.sum", src: filepath.Join(o.RepoDir, "go.sum"), mode: 0o644},
	}
	dl, err := collect(filepath.Join(modcache, "cache", "download"), "modcache/cache/download", func(rel string, d fs.DirEntry) bool {
		return strings.HasSuffix(rel, ".lock") || rel == "sumdb" || strings.HasSuffix(rel, ".partial")
	})
	if err != nil {
		return b, err
	}
	entries = append(entries, dl...)
	return buildCached(o, b, key, entries)
}

// syncSuiteSource makes the blob of the acceptance suite's Go files (acceptance-tests/**/*.go, under
// acceptance-tests/ in the tarball). Its key is the files' names and contents.
func syncSuiteSource(o Options) (Blob, error) {
	b := Blob{Path: SuiteSourceBlob}
	all, err := collect(filepath.Join(o.RepoDir, suiteDir), suiteDir, nil)
	if err != nil {
		return b, err
	}
	var entries []entry
	h := sha256.New()
	fmt.Fprintln(h, "suite source v1")
	for _, e := range all {
		if e.src == "" || !strings.HasSuffix(e.name, ".go") {
			continue
		}
		data, err := os.ReadFile(e.src)
		if err != nil {
			return b, err
		}
		e.mode = 0o644
		fmt.Fprintf(h, "%s %x\n", e.name, sha256.Sum256(data))
		entries = append(entries, e)
	}
	if len(entries) == 0 {
		return b, fmt.Errorf("%s holds no Go files", suiteDir)
	}
	return buildCached(o, b, hex.EncodeToString(h.Sum(nil)), entries)
}

// offlineEnv lets the go command use only the existing module cache.
func offlineEnv(modcache string) []string {
	return []string{"GOMODCACHE=" + modcache, "GOPROXY=off", "GOFLAGS=-mod=readonly", "GOTOOLCHAIN=local", "GOWORK=off"}
}

func runGo(ctx context.Context, o Options, dir string, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, o.Go, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return ": " + strings.TrimSpace(string(ee.Stderr))
	}
	return ""
}

// stamp records what a blob was made from.
type stamp struct {
	Key  string `json:"key"`
	Size int64  `json:"size"`
	SHA  string `json:"sha"`
}

func stampPath(o Options, blobPath string) string {
	return filepath.Join(o.CacheDir, strings.ReplaceAll(blobPath, "/", "__")+".json")
}

// cached returns the blob as recorded when it was made from the same inputs, if it is still in blobs/ unchanged.
func cached(o Options, b Blob, key string) (Blob, bool) {
	data, err := os.ReadFile(stampPath(o, b.Path))
	if err != nil {
		return b, false
	}
	var s stamp
	if json.Unmarshal(data, &s) != nil || s.Key != key {
		return b, false
	}
	size, sha, err := fileDigest(filepath.Join(o.RepoDir, "blobs", filepath.FromSlash(b.Path)))
	if err != nil || size != s.Size || sha != s.SHA {
		return b, false
	}
	b.Size, b.SHA, b.Reused = size, sha, true
	o.Logf("blob %s is up to date", b.Path)
	return b, true
}

func buildCached(o Options, b Blob, key string, entries []entry) (Blob, error) {
	if reused, ok := cached(o, b, key); ok {
		return reused, nil
	}
	dst := filepath.Join(o.RepoDir, "blobs", filepath.FromSlash(b.Path))
	o.Logf("making blob %s (%d entries)", b.Path, len(entries))
	size, sha, err := writeTarball(dst, entries)
	if err != nil {
		return b, err
	}
	b.Size, b.SHA = size, sha
	data, _ := json.Marshal(stamp{Key: key, Size: size, SHA: sha})
	if err := os.MkdirAll(o.CacheDir, 0o755); err != nil {
		return b, err
	}
	if err := os.WriteFile(stampPath(o, b.Path), data, 0o644); err != nil {
		return b, err
	}
	o.Logf("made blob %s: %d bytes, %s", b.Path, size, sha)
	return b, nil
}

package deployer

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/atomicfile"

	"go.uber.org/zap"

	"github.com/etcd-release/etcd-release/src/director/tasks"
	"github.com/etcd-release/etcd-release/src/releasetools/release"
)

// compiledPackage is a package compiled for this director, kept in the compiled-package cache.
type compiledPackage struct {
	Name        string `json:"name"`
	Version     string `json:"version"`
	Fingerprint string `json:"fingerprint"`
	// DependencyKey is BOSH's dependency key: JSON of the transitive dependencies' [name, version] pairs.
	DependencyKey string    `json:"dependency_key"`
	CompiledAt    time.Time `json:"compiled_at"`
	dir           string
}

// cacheKey names a compiled package in the cache: package name, fingerprint and dependency key.
func cacheKey(p *release.Package, depKey string) string {
	sum := sha1.Sum([]byte(p.Fingerprint + "\x00" + depKey))
	return p.Name + "-" + hex.EncodeToString(sum[:8])
}

// dependencyKey is the JSON list of [name, version] of p's transitive dependencies in dependency order.
func dependencyKey(rel *release.Release, p *release.Package) string {
	seen := map[string]bool{}
	var walk func(name string)
	walk = func(name string) {
		dp, ok := rel.Package(name)
		if !ok || seen[name] {
			return
		}
		seen[name] = true
		for _, dd := range dp.Dependencies {
			walk(dd)
		}
	}
	for _, dd := range p.Dependencies {
		walk(dd)
	}
	var pairs [][2]string
	for _, q := range rel.Packages { // dependency order
		if seen[q.Name] {
			pairs = append(pairs, [2]string{q.Name, q.Version})
		}
	}
	if pairs == nil {
		pairs = [][2]string{}
	}
	b, _ := json.Marshal(pairs)
	return string(b)
}

// compileAll compiles every package the plan's jobs need (with their dependencies), in dependency order, up to
// workers at a time, reusing the cache. It returns the compiled packages by release name and package name.
func (d *Deployer) compileAll(ctx context.Context, p *plan, out *tasks.Output, workers int) (map[string]map[string]*compiledPackage, error) {
	type need struct {
		rel *release.Release
		pkg *release.Package
	}
	needed := map[string]*need{} // "release/pkg"
	var add func(rel *release.Release, name string)
	add = func(rel *release.Release, name string) {
		key := rel.Manifest.Name + "/" + name
		if needed[key] != nil {
			return
		}
		pkg, ok := rel.Package(name)
		if !ok {
			return
		}
		needed[key] = &need{rel, pkg}
		for _, dep := range pkg.Dependencies {
			add(rel, dep)
		}
	}
	for _, gp := range p.groups {
		for _, jp := range gp.jobs {
			for _, name := range jp.job.Spec.Packages {
				add(jp.rel, name)
			}
		}
	}
	result := map[string]map[string]*compiledPackage{}
	var mu sync.Mutex
	put := func(rel string, cp *compiledPackage) {
		mu.Lock()
		defer mu.Unlock()
		if result[rel] == nil {
			result[rel] = map[string]*compiledPackage{}
		}
		result[rel][cp.Name] = cp
	}
	var toCompile []*need
	stage := out.Stage("Preparing package compilation", nil, 1)
	if err := stage.Step("Finding packages to compile", func() error {
		for _, key := range slices.Sorted(mapKeys(needed)) {
			n := needed[key]
			if cp, ok := d.cachedPackage(n.pkg, dependencyKey(n.rel, n.pkg)); ok {
				put(n.rel.Manifest.Name, cp)
				continue
			}
			toCompile = append(toCompile, n)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if len(toCompile) == 0 {
		return result, nil
	}
	// Dependency order within each release; packages whose dependencies are ready compile in parallel.
	sort.SliceStable(toCompile, func(i, j int) bool {
		return slices.Index(toCompile[i].rel.Packages, toCompile[i].pkg) < slices.Index(toCompile[j].rel.Packages, toCompile[j].pkg)
	})
	compStage := out.Stage("Compiling packages", nil, len(toCompile))
	done := map[string]chan struct{}{}
	for _, n := range toCompile {
		done[n.rel.Manifest.Name+"/"+n.pkg.Name] = make(chan struct{})
	}
	workers = max(workers, 1)
	sem := make(chan struct{}, workers)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var firstErr error
	for _, n := range toCompile {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done[n.rel.Manifest.Name+"/"+n.pkg.Name])
			for _, dep := range n.pkg.Dependencies {
				if ch, ok := done[n.rel.Manifest.Name+"/"+dep]; ok {
					select {
					case <-ch:
					case <-ctx.Done():
						return
					}
				}
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			if ctx.Err() != nil {
				return
			}
			mu.Lock()
			deps := map[string]*compiledPackage{}
			for name, cp := range result[n.rel.Manifest.Name] {
				deps[name] = cp
			}
			mu.Unlock()
			err := compStage.Step(n.pkg.Name+"/"+n.pkg.Version, func() error {
				cp, err := d.compile(ctx, n.rel, n.pkg, deps, out)
				if err != nil {
					return err
				}
				put(n.rel.Manifest.Name, cp)
				return nil
			})
			if err != nil {
				errMu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				errMu.Unlock()
				cancel()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return result, nil
}

func (d *Deployer) compiledDir() string { return filepath.Join(d.cfg.StateDir, "compiled_packages") }

func (d *Deployer) cachedPackage(p *release.Package, depKey string) (*compiledPackage, bool) {
	dir := filepath.Join(d.compiledDir(), cacheKey(p, depKey))
	b, err := os.ReadFile(dir + ".json")
	if err != nil {
		return nil, false
	}
	var cp compiledPackage
	if json.Unmarshal(b, &cp) != nil || cp.Fingerprint != p.Fingerprint || cp.DependencyKey != depKey {
		return nil, false
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, false
	}
	cp.dir = dir
	return &cp, true
}

// compile runs the package's packaging script on this host, as a BOSH agent does on a compilation VM: `bash -x
// packaging` in the extracted package (BOSH_COMPILE_TARGET), installing into BOSH_INSTALL_TARGET, with the
// compiled dependencies under BOSH_PACKAGES_DIR. The result moves into the cache atomically.
func (d *Deployer) compile(ctx context.Context, rel *release.Release, p *release.Package, deps map[string]*compiledPackage, out *tasks.Output) (*compiledPackage, error) {
	depKey := dependencyKey(rel, p)
	if cp, ok := d.cachedPackage(p, depKey); ok {
		return cp, nil
	}
	if err := os.MkdirAll(d.compiledDir(), 0o700); err != nil {
		return nil, err
	}
	scratch, err := os.MkdirTemp(filepath.Join(d.cfg.StateDir, "tmp"), "compile-"+p.Name+"-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratch)
	compileDir := filepath.Join(scratch, "compile", p.Name)
	pkgsDir := filepath.Join(scratch, "packages")
	installDir := filepath.Join(pkgsDir, p.Name)
	for _, dir := range []string{compileDir, installDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	if err := p.Extract(compileDir); err != nil {
		return nil, fmt.Errorf("extracting package '%s': %w", p.Name, err)
	}
	// Dependencies are visible at BOSH_PACKAGES_DIR/<dep> (the transitive closure, as on a compilation VM).
	var link func(name string) error
	link = func(name string) error {
		dp, ok := rel.Package(name)
		if !ok {
			return fmt.Errorf("package '%s' depends on unknown package '%s'", p.Name, name)
		}
		if _, err := os.Lstat(filepath.Join(pkgsDir, name)); err == nil {
			return nil
		}
		cp := deps[name]
		if cp == nil {
			return fmt.Errorf("package '%s': dependency '%s' is not compiled", p.Name, name)
		}
		if err := os.Symlink(cp.dir, filepath.Join(pkgsDir, name)); err != nil {
			return err
		}
		for _, dd := range dp.Dependencies {
			if err := link(dd); err != nil {
				return err
			}
		}
		return nil
	}
	for _, dep := range p.Dependencies {
		if err := link(dep); err != nil {
			return nil, err
		}
	}
	logPath := filepath.Join(scratch, "packaging.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "bash", "-x", "packaging")
	cmd.Dir = compileDir
	cmd.Env = []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + scratch, "LANG=C", "TMPDIR=" + scratch,
		"BOSH_COMPILE_TARGET=" + compileDir, "BOSH_INSTALL_TARGET=" + installDir, "BOSH_PACKAGE_NAME=" + p.Name,
		"BOSH_PACKAGE_VERSION=" + p.Version, "BOSH_PACKAGES_DIR=" + pkgsDir,
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	start := time.Now()
	runErr := cmd.Run()
	logFile.Close()
	logText, _ := os.ReadFile(logPath)
	out.Debugf("compiling package %s/%s (%s):\n%s", p.Name, p.Version, time.Since(start).Round(time.Millisecond), logText)
	if runErr != nil {
		return nil, fmt.Errorf("Compiling package '%s/%s': packaging script failed (%v):\n%s", p.Name, p.Version, runErr, lastLines(string(logText), 20))
	}
	dest := filepath.Join(d.compiledDir(), cacheKey(p, depKey))
	_ = os.RemoveAll(dest)
	if err := os.Rename(installDir, dest); err != nil {
		return nil, err
	}
	cp := &compiledPackage{Name: p.Name, Version: p.Version, Fingerprint: p.Fingerprint, DependencyKey: depKey, CompiledAt: time.Now().UTC(), dir: dest}
	b, _ := json.MarshalIndent(cp, "", "  ")
	if err := atomicfile.Write(dest+".json", b, 0o600); err != nil {
		return nil, err
	}
	d.log.Info("package compiled", zap.String("package", p.Name), zap.String("version", p.Version),
		zap.Duration("took", time.Since(start)), zap.String("reason", "not in the compiled package cache"))
	return cp, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

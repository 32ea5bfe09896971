package deployer

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
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

// need is one package to have compiled: the release it comes from and the package.
type need struct {
	rel *release.Release
	pkg *release.Package
}

func (n *need) key() string { return n.rel.Manifest.Name + "/" + n.pkg.Name }

// compiledSet collects compiled packages by release name and package name; safe for concurrent use.
type compiledSet struct {
	mu sync.Mutex
	m  map[string]map[string]*compiledPackage
}

func (s *compiledSet) put(rel string, cp *compiledPackage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[rel] == nil {
		s.m[rel] = map[string]*compiledPackage{}
	}
	s.m[rel][cp.Name] = cp
}

// of returns a copy of one release's compiled packages.
func (s *compiledSet) of(rel string) map[string]*compiledPackage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.m[rel])
}

// compileAll compiles every package the plan's jobs need (with their dependencies), in dependency order, up to
// workers at a time, reusing the cache. It returns the compiled packages by release name and package name.
func (d *Deployer) compileAll(ctx context.Context, p *plan, out *tasks.Output, workers int) (map[string]map[string]*compiledPackage, error) {
	needed := neededPackages(p.groups)
	result := &compiledSet{m: map[string]map[string]*compiledPackage{}}
	var toCompile []*need
	stage := out.Stage("Preparing package compilation", nil, 1)
	if err := stage.Step("Finding packages to compile", func() error {
		for _, key := range slices.Sorted(mapKeys(needed)) {
			n := needed[key]
			if cp, ok := d.cachedPackage(n.pkg, dependencyKey(n.rel, n.pkg)); ok {
				result.put(n.rel.Manifest.Name, cp)
				continue
			}
			toCompile = append(toCompile, n)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if len(toCompile) == 0 {
		return result.m, nil
	}
	sortByDependencyOrder(toCompile)
	compStage := out.Stage("Compiling packages", nil, len(toCompile))
	err := inDependencyOrder(ctx, toCompile, workers, func(ctx context.Context, n *need) error {
		deps := result.of(n.rel.Manifest.Name)
		return compStage.Step(n.pkg.Name+"/"+n.pkg.Version, func() error {
			cp, err := d.compile(ctx, n.rel, n.pkg, deps, out)
			if err != nil {
				return err
			}
			result.put(n.rel.Manifest.Name, cp)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return result.m, nil
}

// neededPackages lists the packages the groups' jobs name, with their transitive dependencies, by
// "release/package".
func neededPackages(groups []*groupPlan) map[string]*need {
	needed := map[string]*need{}
	var add func(rel *release.Release, name string)
	add = func(rel *release.Release, name string) {
		if needed[rel.Manifest.Name+"/"+name] != nil {
			return
		}
		pkg, ok := rel.Package(name)
		if !ok {
			return
		}
		needed[rel.Manifest.Name+"/"+name] = &need{rel, pkg}
		for _, dep := range pkg.Dependencies {
			add(rel, dep)
		}
	}
	for _, gp := range groups {
		for _, jp := range gp.jobs {
			for _, name := range jp.job.Spec.Packages {
				add(jp.rel, name)
			}
		}
	}
	return needed
}

// sortByDependencyOrder sorts packages by their position in their release (release.MF lists dependencies first).
func sortByDependencyOrder(list []*need) {
	sort.SliceStable(list, func(i, j int) bool {
		return slices.Index(list[i].rel.Packages, list[i].pkg) < slices.Index(list[j].rel.Packages, list[j].pkg)
	})
}

// inDependencyOrder runs fn for every package once the packages in list that it depends on are done, up to
// workers at a time. The first error cancels the rest (packages not started yet are skipped) and is returned.
func inDependencyOrder(ctx context.Context, list []*need, workers int, fn func(context.Context, *need) error) error {
	done := map[string]chan struct{}{}
	for _, n := range list {
		done[n.key()] = make(chan struct{})
	}
	sem := make(chan struct{}, max(workers, 1))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var firstErr error
	wait := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for _, n := range list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done[n.key()])
			for _, dep := range n.pkg.Dependencies {
				if ch, ok := done[n.rel.Manifest.Name+"/"+dep]; ok && !wait(ch) {
					return
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
			if err := fn(ctx, n); err != nil {
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
	return firstErr
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
	w := compileWorkspace{scratch: scratch, compileDir: filepath.Join(scratch, "compile", p.Name), pkgsDir: filepath.Join(scratch, "packages")}
	w.installDir = filepath.Join(w.pkgsDir, p.Name)
	if err := w.prepare(rel, p, deps); err != nil {
		return nil, err
	}
	start := time.Now()
	if err := w.runPackaging(ctx, p, out); err != nil {
		return nil, err
	}
	cp, err := d.storeCompiled(p, depKey, w.installDir)
	if err != nil {
		return nil, err
	}
	d.log.Info("package compiled", zap.String("package", p.Name), zap.String("version", p.Version),
		zap.Duration("took", time.Since(start)), zap.String("reason", "not in the compiled package cache"))
	return cp, nil
}

// compileWorkspace is the scratch layout of one compilation: the extracted package (BOSH_COMPILE_TARGET), the
// packages directory (BOSH_PACKAGES_DIR) with the dependencies and the install target (BOSH_INSTALL_TARGET).
type compileWorkspace struct {
	scratch, compileDir, pkgsDir, installDir string
}

// prepare extracts the package and links its compiled dependencies (the transitive closure, as on a compilation
// VM) at pkgsDir/<dep>.
func (w *compileWorkspace) prepare(rel *release.Release, p *release.Package, deps map[string]*compiledPackage) error {
	for _, dir := range []string{w.compileDir, w.installDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	if err := p.Extract(w.compileDir); err != nil {
		return fmt.Errorf("extracting package '%s': %w", p.Name, err)
	}
	var link func(name string) error
	link = func(name string) error {
		dp, ok := rel.Package(name)
		if !ok {
			return fmt.Errorf("package '%s' depends on unknown package '%s'", p.Name, name)
		}
		if _, err := os.Lstat(filepath.Join(w.pkgsDir, name)); err == nil {
			return nil
		}
		cp := deps[name]
		if cp == nil {
			return fmt.Errorf("package '%s': dependency '%s' is not compiled", p.Name, name)
		}
		if err := os.Symlink(cp.dir, filepath.Join(w.pkgsDir, name)); err != nil {
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
			return err
		}
	}
	return nil
}

// runPackaging runs `bash -x packaging` with the agent's compile environment, in its own process group (killed
// as a whole when ctx ends), and puts its output in the task's debug log; a failure quotes the last lines.
func (w *compileWorkspace) runPackaging(ctx context.Context, p *release.Package, out *tasks.Output) error {
	logPath := filepath.Join(w.scratch, "packaging.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "bash", "-x", "packaging")
	cmd.Dir = w.compileDir
	cmd.Env = []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + w.scratch, "LANG=C", "TMPDIR=" + w.scratch,
		"BOSH_COMPILE_TARGET=" + w.compileDir, "BOSH_INSTALL_TARGET=" + w.installDir, "BOSH_PACKAGE_NAME=" + p.Name,
		"BOSH_PACKAGE_VERSION=" + p.Version, "BOSH_PACKAGES_DIR=" + w.pkgsDir,
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
		return fmt.Errorf("Compiling package '%s/%s': packaging script failed (%v):\n%s", p.Name, p.Version, runErr, lastLines(string(logText), 20))
	}
	return nil
}

// storeCompiled moves an install target into the compiled-package cache and writes its record.
func (d *Deployer) storeCompiled(p *release.Package, depKey, installDir string) (*compiledPackage, error) {
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
	return cp, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

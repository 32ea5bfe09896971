package deployer

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/etcd-release/etcd-release/src/director/state"
	"github.com/etcd-release/etcd-release/src/director/tasks"
	"github.com/etcd-release/etcd-release/src/director/vm"
)

// `bosh logs` (cloudfoundry/bosh-cli cmd/logs.go, director/deployment.go FetchLogs): GET
// /deployments/D/jobs/G/I/logs?type=job|agent|...&filters=... starts a task whose result is a blob id, which the CLI
// downloads from GET /resources/ID. As the agent does (bosh-agent agent/action/fetch_logs.go), type job packs
// /var/vcap/sys/log and type agent the agent's own log directory (here the VM init's and monit's, /var/vcap/bosh/log).

// logDirs maps a log type the CLI sends to the directory inside the VM it packs.
var logDirs = map[string]string{"job": "/var/vcap/data/sys/log", "agent": "/var/vcap/bosh/log"}

// logSources decides which directories one instance's tarball holds: one type packs its directory at the root,
// several put each under a folder named after the type. An unknown type (system: the VM shares the host's
// /var/log) is an error naming the types this director serves.
func logSources(types []string) (map[string]string, error) {
	if len(types) == 0 {
		types = []string{"job"}
	}
	out := map[string]string{}
	for _, t := range types {
		dir, ok := logDirs[t]
		if !ok {
			return nil, fmt.Errorf("log type '%s' is not supported by the local director: use job or agent (bosh logs, bosh logs --agent)", t)
		}
		prefix := ""
		if len(types) > 1 {
			prefix = t
		}
		out[prefix] = dir
	}
	return out, nil
}

// logSelected reports whether a file (its path relative to its log directory) is packed: every file without
// filters, else the files matching one filter (a glob on the path, or on the file name; "**/" matches any depth).
func logSelected(rel string, filters []string) bool {
	if len(filters) == 0 {
		return true
	}
	for _, f := range filters {
		if ok, _ := path.Match(f, rel); ok {
			return true
		}
		if g, cut := strings.CutPrefix(f, "**/"); cut {
			if ok, _ := path.Match(g, path.Base(rel)); ok {
				return true
			}
		}
	}
	return false
}

// BlobDir holds the blobs the API serves from /resources (log tarballs); each is deleted once downloaded.
func (d *Deployer) BlobDir() string { return filepath.Join(d.cfg.StateDir, "blobs") }

// FetchLogs packs the logs of the selected instances (those with a VM) into one blob and returns its id: one
// instance's tarball as is, several as a tarball of per-instance tarballs named group.index.id.tgz.
func (d *Deployer) FetchLogs(ctx context.Context, out *tasks.Output, name string, sel Selector, types, filters []string) (string, error) {
	dep, err := d.store.Deployment(name)
	if errors.Is(err, state.ErrNotFound) {
		return "", fmt.Errorf("Deployment '%s' doesn't exist: %w", name, ErrNoDeployment)
	}
	if err != nil {
		return "", err
	}
	sources, err := logSources(types)
	if err != nil {
		return "", err
	}
	var insts []state.Instance
	for _, inst := range dep.Instances {
		if sel.matches(inst) && inst.VMCID != "" {
			insts = append(insts, inst)
		}
	}
	if len(insts) == 0 {
		return "", fmt.Errorf("no instance of deployment '%s' matching '%s' has a VM to fetch logs from", name, strings.Trim(sel.Group+"/"+sel.Instance, "/"))
	}
	if err := os.MkdirAll(d.BlobDir(), 0o700); err != nil {
		return "", err
	}
	id := newUUID()
	stage := out.Stage("Fetching logs", nil, len(insts))
	var parts []string
	for _, inst := range insts {
		part := filepath.Join(d.BlobDir(), id+"."+inst.ID)
		if err := stage.Step(instanceName(inst), func() error { return d.packInstanceLogs(inst, sources, filters, part) }); err != nil {
			return "", err
		}
		parts = append(parts, part)
	}
	final := filepath.Join(d.BlobDir(), id)
	if len(parts) == 1 {
		return id, os.Rename(parts[0], final)
	}
	defer func() {
		for _, p := range parts {
			_ = os.Remove(p)
		}
	}()
	files := map[string]string{}
	for i, inst := range insts {
		files[fmt.Sprintf("%s.%d.%s.tgz", inst.Group, inst.Index, inst.ID)] = parts[i]
	}
	return id, writeTarball(final, func(tw *tar.Writer) error {
		for nameInTar, p := range files {
			if err := addFile(tw, p, nameInTar); err != nil {
				return err
			}
		}
		return nil
	})
}

// packInstanceLogs writes one instance's tarball from the host directories backing its VM's log directories.
func (d *Deployer) packInstanceLogs(inst state.Instance, sources map[string]string, filters []string, dest string) error {
	root := filepath.Join(d.cfg.StateDir, "vms", inst.VMCID)
	return writeTarball(dest, func(tw *tar.Writer) error {
		for prefix, vmDir := range sources {
			rel, _ := filepath.Rel(vm.VcapRoot, vmDir)
			dir := filepath.Join(root, rel)
			err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
				if err != nil {
					if os.IsNotExist(err) {
						return nil
					}
					return err
				}
				if !e.Type().IsRegular() {
					return nil
				}
				r, _ := filepath.Rel(dir, p)
				if !logSelected(filepath.ToSlash(r), filters) {
					return nil
				}
				return addFile(tw, p, "./"+path.Join(prefix, filepath.ToSlash(r)))
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
}

func writeTarball(dest string, fill func(*tar.Writer) error) error {
	f, err := os.OpenFile(dest, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	err = fill(tw)
	for _, c := range []io.Closer{tw, gz, f} {
		if cerr := c.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		_ = os.Remove(dest)
	}
	return err
}

// addFile adds one file as it is now; a log that grows while it is read is cut at the size it had.
func addFile(tw *tar.Writer, src, name string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: st.Size(), ModTime: st.ModTime(), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	_, err = io.CopyN(tw, f, st.Size())
	return err
}

package testhelper

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// MaxSnapshotBytes bounds a snapshot carried in one request or answer (JSON, base64): the acceptance suite's
// clusters hold a few megabytes, far from etcd's default 2 GiB quota, and a request body is held in memory.
const MaxSnapshotBytes = 256 << 20

// SnapshotFile is a snapshot as etcd_ctl writes it, carried through the API: the file's name (etcd_ctl's
// etcd-snapshot-<time>-rev<revision>.db[.gz][.enc]), its bytes (base64 in JSON) and the metadata file beside it.
type SnapshotFile struct {
	Name     string          `json:"name"`
	Data     []byte          `json:"data"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
}

// SnapshotResult is the answer of POST /etcd/snapshot.
type SnapshotResult struct {
	Snapshot SnapshotFile   `json:"snapshot"`
	Result   *CommandResult `json:"result"`
}

// RestoreRequest is the body of POST /etcd/restore.
type RestoreRequest struct {
	Snapshot SnapshotFile `json:"snapshot"`
	// Force and Nonce are etcd_ctl restore's --force and --nonce.
	Force bool   `json:"force"`
	Nonce string `json:"nonce,omitempty"`
}

var snapshotNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// snapshot runs `etcd_ctl snapshot` into a scratch directory and returns the file and its metadata: what an
// operator does with `bosh ssh` and `bosh scp` to keep a copy off the VMs.
func (s *Server) snapshot(r *http.Request) (any, error) {
	dir, err := os.MkdirTemp("", "etcd-test-helper-snapshot-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	res, err := run(r.Context(), s.cfg.EtcdCtl, "snapshot", "--dir", dir, "--config", s.cfg.EtcdCtlConfig)
	if err != nil {
		return res, err
	}
	snap, err := readSnapshot(dir)
	if err != nil {
		return res, err
	}
	return &SnapshotResult{Snapshot: *snap, Result: res}, nil
}

// readSnapshot reads the one snapshot etcd_ctl wrote into dir, with its metadata.
func readSnapshot(dir string) (*SnapshotFile, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && !strings.HasSuffix(e.Name(), ".json") {
			names = append(names, e.Name())
		}
	}
	if len(names) != 1 {
		return nil, fmt.Errorf("etcd_ctl snapshot left %d snapshot files in %s, want 1: %v", len(names), dir, names)
	}
	path := filepath.Join(dir, names[0])
	if fi, err := os.Stat(path); err != nil {
		return nil, err
	} else if fi.Size() > MaxSnapshotBytes {
		return nil, fmt.Errorf("snapshot %s is %d bytes, more than the helper carries (%d)", names[0], fi.Size(), MaxSnapshotBytes)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	meta, err := os.ReadFile(path + ".json")
	if err != nil {
		return nil, fmt.Errorf("the metadata beside the snapshot: %w", err)
	}
	if !json.Valid(meta) {
		return nil, fmt.Errorf("%s.json is not JSON", names[0])
	}
	return &SnapshotFile{Name: names[0], Data: data, Metadata: meta}, nil
}

// restore writes the given snapshot (and its metadata) to a scratch directory and runs `etcd_ctl restore
// --snapshot` on it. etcd must be stopped on this VM and every peer (etcd_ctl refuses otherwise).
func (s *Server) restore(r *http.Request) (any, error) {
	var in RestoreRequest
	// base64 makes the body a third larger than the snapshot.
	body := http.MaxBytesReader(nil, r.Body, MaxSnapshotBytes/3*4+1<<20)
	if err := json.NewDecoder(body).Decode(&in); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &apiError{Status: http.StatusRequestEntityTooLarge, Err: fmt.Errorf("the request is larger than %d bytes", tooBig.Limit)}
		}
		return nil, badRequest("decoding the restore request: %v", err)
	}
	name := in.Snapshot.Name
	if !snapshotNameRE.MatchString(name) || strings.Contains(name, "..") || strings.HasSuffix(name, ".json") {
		return nil, badRequest("invalid snapshot file name %q", name)
	}
	if len(in.Snapshot.Data) == 0 {
		return nil, badRequest("snapshot %s: no data", name)
	}
	if len(in.Snapshot.Metadata) > 0 && !json.Valid(in.Snapshot.Metadata) {
		return nil, badRequest("snapshot %s: metadata is not JSON", name)
	}
	dir, err := os.MkdirTemp("", "etcd-test-helper-restore-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, in.Snapshot.Data, 0o600); err != nil {
		return nil, err
	}
	if len(in.Snapshot.Metadata) > 0 {
		if err := os.WriteFile(path+".json", in.Snapshot.Metadata, 0o600); err != nil {
			return nil, err
		}
	}
	argv := []string{s.cfg.EtcdCtl, "restore", "--snapshot", path, "--config", s.cfg.EtcdCtlConfig}
	if in.Force {
		argv = append(argv, "--force")
	}
	if in.Nonce != "" {
		argv = append(argv, "--nonce", in.Nonce)
	}
	return run(r.Context(), argv...)
}

// recoverFromSurvivor runs `etcd_ctl recover-from-survivor` (etcd must be stopped on this VM).
func (s *Server) recoverFromSurvivor(r *http.Request) (any, error) {
	return run(r.Context(), s.cfg.EtcdCtl, "recover-from-survivor", "--config", s.cfg.EtcdCtlConfig)
}

// defrag runs `etcd_ctl defrag`: every member, one at a time, under the cluster's maintenance lock.
func (s *Server) defrag(r *http.Request) (any, error) {
	return run(r.Context(), s.cfg.EtcdCtl, "defrag", "--config", s.cfg.EtcdCtlConfig)
}

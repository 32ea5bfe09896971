// Package state persists what the local director knows — stemcells, releases, cloud config, deployments and
// tasks — as JSON files under one state directory, written atomically, so a restarted director knows its
// deployments and tasks.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/atomicfile"
)

// Stemcell is an uploaded (light) stemcell.
type Stemcell struct {
	Name            string `json:"name"`
	Version         string `json:"version"`
	OperatingSystem string `json:"operating_system"`
	CID             string `json:"cid"`
}

// ReleaseVersion is one uploaded version of a release; the tarball is kept under the state dir.
type ReleaseVersion struct {
	Name               string    `json:"name"`
	Version            string    `json:"version"`
	CommitHash         string    `json:"commit_hash"`
	UncommittedChanges bool      `json:"uncommitted_changes"`
	Tarball            string    `json:"tarball"`
	UploadedAt         time.Time `json:"uploaded_at"`
}

// CloudConfig is one version of the cloud config.
type CloudConfig struct {
	ID        int       `json:"id"`
	Content   string    `json:"content"`
	CreatedAt time.Time `json:"created_at"`
}

// Deployment is a deployed manifest and its instances.
type Deployment struct {
	Name      string     `json:"name"`
	Manifest  string     `json:"manifest"`
	Releases  []NameVer  `json:"releases"`
	Stemcells []NameVer  `json:"stemcells"`
	Instances []Instance `json:"instances"`
}

// NameVer names a release or stemcell version.
type NameVer struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Instance is one instance of an instance group.
type Instance struct {
	Group   string `json:"group"`
	ID      string `json:"id"`
	Index   int    `json:"index"`
	AZ      string `json:"az"`
	IP      string `json:"ip"`
	Network string `json:"network,omitempty"`
	// Gateway and PrefixLen are the VM's subnet's (its default route and netmask); empty = the bridge's.
	Gateway   string `json:"gateway,omitempty"`
	PrefixLen int    `json:"prefix_len,omitempty"`
	Bootstrap bool   `json:"bootstrap"`
	VMCID     string `json:"vm_cid"`
	DiskCID   string `json:"disk_cid"`
	// State is the desired state: started, stopped or detached (BOSH's instance state).
	State string `json:"state"`
	// Lifecycle is service or errand.
	Lifecycle   string    `json:"lifecycle,omitempty"`
	VMCreatedAt time.Time `json:"vm_created_at,omitzero"`
	VMType      string    `json:"vm_type,omitempty"`
	Stemcell    string    `json:"stemcell,omitempty"`
	// DNS are the nameservers the VM's resolv.conf was written with (its subnet's dns when it was created).
	DNS []string `json:"dns,omitempty"`
	// DiskSize is the persistent disk size in MB the instance was last applied with (0 = no disk).
	DiskSize int `json:"disk_size,omitempty"`
	// Applied describes what is installed on the VM (empty until the first apply on the current VM).
	Applied *Applied `json:"applied,omitempty"`
	// Dirty means the last update of this instance did not finish; the next deploy updates it again.
	Dirty bool `json:"dirty,omitempty"`
}

// Applied is what the director last applied to an instance's VM: what change detection compares (the director's
// deployment_plan/instance_plan.rb#changes).
type Applied struct {
	// Jobs are "name/version" in group order.
	Jobs []string `json:"jobs"`
	// Packages maps the installed package names to their versions.
	Packages   map[string]string `json:"packages"`
	ConfigHash string            `json:"configuration_hash"`
}

// Task is a director task.
type Task struct {
	ID          int    `json:"id"`
	State       string `json:"state"`
	Description string `json:"description"`
	Timestamp   int64  `json:"timestamp"`
	StartedAt   int64  `json:"started_at"`
	Result      string `json:"result"`
	User        string `json:"user"`
	Deployment  string `json:"deployment"`
	ContextID   string `json:"context_id"`
}

// Task states as the director API names them.
const (
	TaskQueued     = "queued"
	TaskProcessing = "processing"
	TaskDone       = "done"
	TaskError      = "error"
	TaskCancelled  = "cancelled"
)

// ErrNotFound is returned for unknown objects.
var ErrNotFound = errors.New("not found")

// Store is the director's state on disk. All methods are safe for concurrent use.
type Store struct {
	dir string
	mu  sync.Mutex
	// lastEvent is the highest event id (0 = not read yet).
	lastEvent int
}

// Open creates or opens the state directory.
func Open(dir string) (*Store, error) {
	for _, sub := range []string{"stemcells", "releases", "deployments", "tasks", "cloud-configs", "orphaned-disks", "events"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("creating state dir: %w", err)
		}
	}
	return &Store{dir: dir}, nil
}

// Dir is the state directory.
func (s *Store) Dir() string { return s.dir }

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, b, 0o600)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func list[T any](dir string) ([]T, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []T
	for _, e := range entries {
		if filepath.Ext(e.Name()) != ".json" {
			continue
		}
		var v T
		if err := readJSON(filepath.Join(dir, e.Name()), &v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func safe(s string) string {
	out := []rune{}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.', r == '+':
			out = append(out, r)
		default:
			out = append(out, '_')
		}
	}
	return string(out)
}

// PutStemcell records a stemcell.
func (s *Store) PutStemcell(sc Stemcell) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return writeJSON(filepath.Join(s.dir, "stemcells", safe(sc.Name+"@"+sc.Version)+".json"), sc)
}

// Stemcells lists stemcells sorted by name and version.
func (s *Store) Stemcells() ([]Stemcell, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out, err := list[Stemcell](filepath.Join(s.dir, "stemcells"))
	sort.Slice(out, func(i, j int) bool { return out[i].Name+out[i].Version < out[j].Name+out[j].Version })
	return out, err
}

// ReleaseTarballPath is where an uploaded release version's tarball is kept.
func (s *Store) ReleaseTarballPath(name, version string) string {
	return filepath.Join(s.dir, "releases", safe(name+"@"+version)+".tgz")
}

// PutRelease records a release version.
func (s *Store) PutRelease(r ReleaseVersion) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return writeJSON(filepath.Join(s.dir, "releases", safe(r.Name+"@"+r.Version)+".json"), r)
}

// Releases lists release versions sorted by name, then upload time.
func (s *Store) Releases() ([]ReleaseVersion, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out, err := list[ReleaseVersion](filepath.Join(s.dir, "releases"))
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].UploadedAt.Before(out[j].UploadedAt)
	})
	return out, err
}

// PutCloudConfig stores a new cloud config version.
func (s *Store) PutCloudConfig(content string) (CloudConfig, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	all, err := list[CloudConfig](filepath.Join(s.dir, "cloud-configs"))
	if err != nil {
		return CloudConfig{}, err
	}
	cc := CloudConfig{ID: len(all) + 1, Content: content, CreatedAt: time.Now().UTC()}
	return cc, writeJSON(filepath.Join(s.dir, "cloud-configs", fmt.Sprintf("%06d.json", cc.ID)), cc)
}

// LatestCloudConfig returns the newest cloud config, or ErrNotFound.
func (s *Store) LatestCloudConfig() (CloudConfig, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	all, err := list[CloudConfig](filepath.Join(s.dir, "cloud-configs"))
	if err != nil {
		return CloudConfig{}, err
	}
	if len(all) == 0 {
		return CloudConfig{}, ErrNotFound
	}
	sort.Slice(all, func(i, j int) bool { return all[i].ID < all[j].ID })
	return all[len(all)-1], nil
}

// PutDeployment records a deployment.
func (s *Store) PutDeployment(d Deployment) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return writeJSON(filepath.Join(s.dir, "deployments", safe(d.Name)+".json"), d)
}

// Deployment returns one deployment or ErrNotFound.
func (s *Store) Deployment(name string) (Deployment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var d Deployment
	err := readJSON(filepath.Join(s.dir, "deployments", safe(name)+".json"), &d)
	return d, err
}

// Deployments lists deployments sorted by name.
func (s *Store) Deployments() ([]Deployment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out, err := list[Deployment](filepath.Join(s.dir, "deployments"))
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// DeleteDeployment forgets a deployment.
func (s *Store) DeleteDeployment(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := os.Remove(filepath.Join(s.dir, "deployments", safe(name)+".json"))
	if os.IsNotExist(err) {
		return ErrNotFound
	}
	return err
}

// TaskDir holds a task's output files (event, result, debug).
func (s *Store) TaskDir(id int) string { return filepath.Join(s.dir, "tasks", strconv.Itoa(id)) }

// NewTask allocates the next task ID and records the task as queued.
func (s *Store) NewTask(description, user, deployment, contextID string) (Task, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	all, err := list[Task](filepath.Join(s.dir, "tasks"))
	if err != nil {
		return Task{}, err
	}
	id := 1
	for _, t := range all {
		if t.ID >= id {
			id = t.ID + 1
		}
	}
	t := Task{ID: id, State: TaskQueued, Description: description, Timestamp: time.Now().Unix(), User: user, Deployment: deployment, ContextID: contextID}
	if err := os.MkdirAll(filepath.Join(s.dir, "tasks", strconv.Itoa(id)), 0o700); err != nil {
		return Task{}, err
	}
	return t, writeJSON(filepath.Join(s.dir, "tasks", strconv.Itoa(id)+".json"), t)
}

// PutTask updates a task.
func (s *Store) PutTask(t Task) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return writeJSON(filepath.Join(s.dir, "tasks", strconv.Itoa(t.ID)+".json"), t)
}

// Task returns one task or ErrNotFound.
func (s *Store) Task(id int) (Task, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var t Task
	err := readJSON(filepath.Join(s.dir, "tasks", strconv.Itoa(id)+".json"), &t)
	return t, err
}

// Tasks lists tasks, newest first.
func (s *Store) Tasks() ([]Task, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out, err := list[Task](filepath.Join(s.dir, "tasks"))
	sort.Slice(out, func(i, j int) bool { return out[i].ID > out[j].ID })
	return out, err
}

package backup

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// SealCommand is the etcd_ctl subcommand ChildSealer runs: it reads a sealRequest on stdin, seals under
// IdleScheduling and writes the sealed Meta on stdout.
const SealCommand = "seal-snapshot"

// sealRequest is what the parent hands the seal child: the copied part, the metadata of the member it came
// from, and the options that shape the file. It travels on stdin, never in argv, because it can carry the
// encryption key.
type sealRequest struct {
	Part      Part   `json:"part"`
	Meta      Meta   `json:"meta"`
	Dir       string `json:"dir"`
	Gzip      bool   `json:"gzip"`
	KeepCount int    `json:"keep_count"`
	KeepDays  int    `json:"keep_days"`
	Key       *Key   `json:"key,omitempty"`
	// Rest says the member's db file is open as restFD, for the rest of the database (Part.Rest).
	Rest bool `json:"rest,omitempty"`
}

// restFD is where the seal child finds the member's db file (the first of exec's ExtraFiles).
const restFD = 3

// copiedLine is what the seal child prints once it has copied the rest of the database: the parent then ends
// the read transaction that kept those pages unchanged, while the child goes on hashing and verifying.
const copiedLine = `{"copied":true}`

// ChildSealer seals snapshots in a child process (Path with Args, e.g. etcd_ctl seal-snapshot) that runs
// under SCHED_IDLE. The scheduler uses it so that the heavy part of a snapshot (copying the data pages,
// hashing, the full open of the database, gzip, encryption) never competes with the member it runs beside:
// the child gets the CPU the member leaves idle.
type ChildSealer struct {
	Path string
	Args []string
	// Env, if set, is the child's whole environment.
	Env []string
	// Stderr receives the child's log lines (nil: discarded).
	Stderr io.Writer
	// CopyTimeout bounds how long the child may take to copy the data pages (0: DefaultCopyTimeout). The
	// member's read transaction stays open until then, and while it is open bbolt reuses no freed page, so
	// the database grows with every write; a child starved of CPU for that long is killed and the snapshot
	// fails (the next check tries again).
	CopyTimeout time.Duration
}

// DefaultCopyTimeout is ChildSealer's bound on the copy of the data pages.
const DefaultCopyTimeout = 10 * time.Minute

func (c ChildSealer) Seal(ctx context.Context, part Part, meta *Meta, o Options) (*Meta, error) {
	req, err := json.Marshal(sealRequest{Part: part, Meta: *meta, Dir: o.Dir, Gzip: o.Gzip, KeepCount: o.KeepCount, KeepDays: o.KeepDays, Key: o.Key, Rest: part.Rest != nil})
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, c.Path, c.Args...)
	cmd.Env, cmd.Stdin = c.Env, bytes.NewReader(req)
	// The child must not outlive this process while it copies pages only this process's read transaction
	// keeps unchanged. Linux sends the signal when the thread that started the child ends, so that thread
	// stays locked to this goroutine until the child is reaped.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if part.Rest != nil {
		cmd.ExtraFiles = []*os.File{part.Rest} // the child's restFD
	}
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	if c.Stderr != nil {
		cmd.Stderr = io.MultiWriter(&errOut, c.Stderr)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	name := strings.Join(append([]string{c.Path}, c.Args...), " ")
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	timeout := c.CopyTimeout
	if timeout <= 0 {
		timeout = DefaultCopyTimeout
	}
	copied := make(chan struct{})
	starved := time.AfterFunc(timeout, func() {
		select {
		case <-copied:
		default:
			_ = cmd.Process.Kill()
		}
	})
	last := readChildOutput(stdout, part, copied)
	err = cmd.Wait()
	if !starved.Stop() && !isClosed(copied) {
		return nil, fmt.Errorf("%s had not copied the database after %s; it was stopped so that the member's read transaction ends (the next check tries again)", name, timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %s", name, err, lastLine(errOut.String()))
	}
	var m Meta
	if err := json.Unmarshal(last, &m); err != nil {
		return nil, fmt.Errorf("%s printed no snapshot metadata: %w", name, err)
	}
	m.Dir = o.Dir
	return &m, nil
}

// readChildOutput reads the child's stdout to its end, releasing part and closing copied when the child says
// it has copied the rest (at once if there is no rest), and returns the last other line (the sealed Meta).
func readChildOutput(r io.Reader, part Part, copied chan struct{}) []byte {
	if part.Rest == nil {
		close(copied)
	}
	var last []byte
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		if sc.Text() == copiedLine {
			part.release()
			if !isClosed(copied) {
				close(copied)
			}
			continue
		}
		last = append(last[:0], sc.Bytes()...)
	}
	return last
}

// RunSealChild is the seal child's whole work: IdleScheduling, then Seal of the request read from in, with
// the sealed Meta written to out. A failure to lower its priority is logged, not fatal: the snapshot is
// still wanted.
func RunSealChild(ctx context.Context, in io.Reader, out io.Writer, lg *zap.Logger) error {
	if err := IdleScheduling(); err != nil {
		lg.Warn("the snapshot seal runs at a higher priority than idle", zap.Error(err))
	}
	var req sealRequest
	if err := json.NewDecoder(in).Decode(&req); err != nil {
		return fmt.Errorf("reading the seal request on stdin: %w", err)
	}
	if req.Dir == "" || req.Part.Path == "" {
		return fmt.Errorf("the seal request on stdin names no part file or backup dir")
	}
	if req.Rest {
		rest := os.NewFile(restFD, "member db file")
		req.Part.Rest = rest
		req.Part.Release = func() {
			rest.Close()
			fmt.Fprintln(out, copiedLine)
		}
	}
	m, err := Seal(ctx, req.Part, &req.Meta, Options{Dir: req.Dir, Gzip: req.Gzip, KeepCount: req.KeepCount, KeepDays: req.KeepDays, Key: req.Key, Log: lg})
	if err != nil {
		return err
	}
	return json.NewEncoder(out).Encode(m)
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

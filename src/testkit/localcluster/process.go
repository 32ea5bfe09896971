package localcluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Process is one running `etcd_ctl start`.
type Process struct {
	Index int
	cmd   *exec.Cmd
	log   *os.File
	done  chan struct{}
	mu    sync.Mutex
	err   error
}

// LogPath is member i's etcd_ctl log.
func (l *Layout) LogPath(i int) string { return filepath.Join(l.Paths(i).LogDir, "etcd_ctl.log") }

// StartMember starts `bin start` for member i with its current config. With detach the process gets its own
// session and outlives the caller (for the developer cluster).
func (l *Layout) StartMember(bin string, i int, detach bool) (*Process, error) {
	if err := os.MkdirAll(l.Paths(i).LogDir, 0o755); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(l.LogPath(i), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "start", "--config", l.ConfigPath(i))
	cmd.Stdout, cmd.Stderr = logf, logf
	if detach {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting member %d: %w", i, err)
	}
	p := &Process{Index: i, cmd: cmd, log: logf, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// Pid of the process.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// ExitErr is the process's exit error once Done is closed.
func (p *Process) ExitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Stop sends SIGTERM and waits up to grace, then kills. It returns an error if the process had to be killed.
func (p *Process) Stop(grace time.Duration) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
		return errors.New("did not stop within the grace period and was killed")
	}
}

// Kill sends SIGKILL and waits for the exit.
func (p *Process) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultStopGrace is how long Stop waits after SIGTERM before it sends SIGKILL when the context has no
// earlier deadline.
const DefaultStopGrace = 10 * time.Second

// process is the one child-process type of this package: every program the package starts (ip, nsenter,
// the VM init) goes through it. A single goroutine waits for the child and records how it ended; everyone
// else reads that record after Done is closed. The child gets its own process group, so signals reach
// the whole tree it started (e.g. nsenter and the program it runs inside the VM).
type process struct {
	cmd  *exec.Cmd
	done chan struct{}

	mu      sync.Mutex
	waitErr error
}

// newProcess wraps cmd; the caller sets stdio, env and dir before calling Start.
func newProcess(cmd *exec.Cmd) *process {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	return &process{cmd: cmd, done: make(chan struct{})}
}

// Start starts the child and the goroutine that records its exit.
func (p *process) Start() error {
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", p.cmd.Path, err)
	}
	go func() {
		err := p.cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(p.done)
	}()
	return nil
}

// Pid is the child's process id (also its process group id).
func (p *process) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the child has exited.
func (p *process) Done() <-chan struct{} { return p.done }

// Exited reports whether the child has exited.
func (p *process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait blocks until the child exits or ctx ends. It returns the exit code (-1 when killed by a signal) and
// an error only when the child could not be waited for or ctx ended first.
func (p *process) Wait(ctx context.Context) (int, error) {
	select {
	case <-p.done:
	case <-ctx.Done():
		return -1, ctx.Err()
	}
	p.mu.Lock()
	err := p.waitErr
	p.mu.Unlock()
	if err == nil {
		return 0, nil
	}
	if errors.Is(err, exec.ErrWaitDelay) && p.cmd.ProcessState != nil {
		// The child exited but something it started still held its output pipes.
		return p.cmd.ProcessState.ExitCode(), nil
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return exitErr.ExitCode(), nil
	}
	return -1, err
}

// signalGroup sends sig to the child's process group; a group that is already gone is not an error.
func (p *process) signalGroup(sig syscall.Signal) {
	if p.Exited() {
		return
	}
	_ = syscall.Kill(-p.Pid(), sig)
	_ = p.cmd.Process.Signal(sig)
}

// Stop sends SIGTERM to the child's group and waits; when ctx ends (or after DefaultStopGrace without a
// deadline) it sends SIGKILL and waits for the exit to be recorded.
func (p *process) Stop(ctx context.Context) {
	if p.Exited() {
		return
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultStopGrace)
		defer cancel()
	}
	p.signalGroup(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-ctx.Done():
		p.Kill()
	}
}

// Kill sends SIGKILL to the child's group and waits for the exit to be recorded.
func (p *process) Kill() {
	p.signalGroup(syscall.SIGKILL)
	<-p.done
}

// runResult is what run collected from a finished command.
type runResult struct {
	Stdout, Stderr []byte
	ExitCode       int
}

// run starts argv with the given environment (nil = inherit) and stdin, waits for it, and returns its
// output. When ctx ends, the command's process group gets SIGTERM and, after grace, SIGKILL; the error is
// then ctx's error. A non-zero exit is not an error here.
func run(ctx context.Context, argv []string, env []string, stdin io.Reader, grace time.Duration) (runResult, error) {
	if len(argv) == 0 {
		return runResult{}, errors.New("empty command")
	}
	cmd := exec.Command(toolPath(argv[0]), argv[1:]...)
	cmd.Env = env
	cmd.Dir = "/"
	// Background children (a hook that starts a daemon without redirecting it) may keep the output pipes
	// open; stop waiting for them shortly after the command itself has exited.
	cmd.WaitDelay = time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Stdin = stdin
	p := newProcess(cmd)
	if err := p.Start(); err != nil {
		return runResult{}, err
	}
	code, err := p.Wait(ctx)
	if err != nil && ctx.Err() != nil {
		stopCtx, cancel := context.WithTimeout(context.Background(), grace)
		p.Stop(stopCtx)
		cancel()
		return runResult{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: -1}, fmt.Errorf("running %s: %w", argv[0], ctx.Err())
	}
	return runResult{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: code}, err
}

// runOK runs argv like run and turns a non-zero exit into an error that carries the command and stderr.
func runOK(ctx context.Context, argv ...string) (string, error) {
	res, err := run(ctx, argv, nil, nil, 2*time.Second)
	if err != nil {
		return "", err
	}
	if res.ExitCode != 0 {
		return "", &CommandError{Argv: argv, ExitCode: res.ExitCode, Stderr: strings.TrimSpace(string(res.Stderr))}
	}
	return string(res.Stdout), nil
}

// CommandError is a host command (ip, nsenter, ...) that exited non-zero.
type CommandError struct {
	Argv     []string
	ExitCode int
	Stderr   string
}

func (e *CommandError) Error() string {
	return fmt.Sprintf("%s: exit %d: %s", strings.Join(e.Argv, " "), e.ExitCode, e.Stderr)
}

// toolDirs are searched after PATH for the system tools this package runs (ip, nft, nsenter, unshare,
// monit): a director started from a non-login shell may lack the sbin directories in its PATH.
var toolDirs = []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin"}

// toolPath resolves a bare program name through PATH and then toolDirs; anything else is returned as is.
func toolPath(name string) string {
	if strings.ContainsRune(name, '/') {
		return name
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range toolDirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return name
}

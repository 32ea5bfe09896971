package testhelper

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// RunDir is where a job's pidfiles live under root (BOSH: /var/vcap/sys/run/<job>).
func RunDir(root, job string) string { return filepath.Join(root, "sys", "run", job) }

func (s *Server) kill(r *http.Request) (any, error) {
	job := r.PathValue("job")
	if err := checkJobName(job); err != nil {
		return nil, err
	}
	return Kill(s.cfg.VcapRoot, job)
}

// Kill sends SIGKILL to every process named by a pidfile in the job's run dir — an operator's `kill -9` of the
// job's processes, which monit then notices and restarts. It fails when no pidfile names a live process.
func Kill(root, job string) (*CommandResult, error) {
	if err := checkJobName(job); err != nil {
		return nil, err
	}
	pidfiles, err := filepath.Glob(filepath.Join(RunDir(root, job), "*.pid"))
	if err != nil {
		return nil, err
	}
	sort.Strings(pidfiles)
	res := &CommandResult{Command: []string{"kill", "-KILL"}}
	var out []string
	for _, f := range pidfiles {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 1 {
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			out = append(out, fmt.Sprintf("%s: pid %d: %v", filepath.Base(f), pid, err))
			continue
		}
		res.Command = append(res.Command, strconv.Itoa(pid))
		out = append(out, fmt.Sprintf("%s: killed pid %d", filepath.Base(f), pid))
	}
	res.Stdout = strings.Join(out, "\n")
	if len(res.Command) == 2 {
		return res, &apiError{Status: http.StatusNotFound, Err: fmt.Errorf("no live process of job %s in %s/*.pid", job, RunDir(root, job))}
	}
	return res, nil
}

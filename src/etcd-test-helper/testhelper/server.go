package testhelper

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Chain is the iptables chain holding the partition rules.
const Chain = "ETCD-TEST-HELPER"

// Server serves the helper's API.
type Server struct {
	cfg Config
	log *slog.Logger
	mu  sync.Mutex // one firewall change at a time
}

// NewServer returns a Server for a validated config.
func NewServer(cfg Config, log *slog.Logger) *Server {
	return &Server{cfg: cfg, log: log}
}

// apiError is an error with the HTTP status it maps to.
type apiError struct {
	Status int
	Err    error
}

func (e *apiError) Error() string { return e.Err.Error() }
func (e *apiError) Unwrap() error { return e.Err }

func badRequest(format string, args ...any) error {
	return &apiError{Status: http.StatusBadRequest, Err: fmt.Errorf(format, args...)}
}

// CommandResult is what the helper reports for a command it ran.
type CommandResult struct {
	Command  []string `json:"command"`
	ExitCode int      `json:"exit_code"`
	Stdout   string   `json:"stdout"`
	Stderr   string   `json:"stderr"`
}

// Handler is the API:
//
//	GET  /healthz                        no auth; "ok"
//	POST /monit/{job}/{stop|start|restart}
//	POST /store/{job}/wipe               removes everything inside <vcap>/store/<job>
//	POST /process/{job}/kill             SIGKILL to the processes of <vcap>/sys/run/<job>/*.pid
//	POST /partition   {"peers":["10.244.0.3",...]}  drops traffic to and from the peers
//	POST /heal                           removes every partition rule
//	GET  /partition                      the current rules
//	GET  /status                         etcd_ctl status --json
//	POST /etcd/snapshot                  etcd_ctl snapshot; answers with the file and its metadata
//	POST /etcd/restore  {"snapshot":{...},"force":true}  etcd_ctl restore --snapshot of that file
//	POST /etcd/recover-from-survivor     etcd_ctl recover-from-survivor
//	POST /etcd/defrag                    etcd_ctl defrag (every member, one at a time)
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.Handle("POST /monit/{job}/{action}", s.wrap(s.monit))
	mux.Handle("POST /store/{job}/wipe", s.wrap(s.wipe))
	mux.Handle("POST /process/{job}/kill", s.wrap(s.kill))
	mux.Handle("POST /partition", s.wrap(s.partition))
	mux.Handle("GET /partition", s.wrap(s.listPartition))
	mux.Handle("POST /heal", s.wrap(s.heal))
	mux.Handle("GET /status", s.wrap(s.status))
	mux.Handle("POST /etcd/snapshot", s.wrap(s.snapshot))
	mux.Handle("POST /etcd/restore", s.wrap(s.restore))
	mux.Handle("POST /etcd/recover-from-survivor", s.wrap(s.recoverFromSurvivor))
	mux.Handle("POST /etcd/defrag", s.wrap(s.defrag))
	return mux
}

// wrap authenticates, runs h, writes its value as JSON (or its error as {"error": ...} with the error's status),
// and logs the request.
func (s *Server) wrap(h func(*http.Request) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		status := http.StatusOK
		var body any
		if !s.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Basic realm="etcd-test-helper"`)
			status, body = http.StatusUnauthorized, map[string]string{"error": "unauthorized"}
		} else if v, err := h(r); err != nil {
			status = http.StatusInternalServerError
			var ae *apiError
			if errors.As(err, &ae) {
				status = ae.Status
			}
			body = map[string]any{"error": err.Error()}
			if res, ok := v.(*CommandResult); ok && res != nil {
				body = map[string]any{"error": err.Error(), "result": res}
			}
		} else {
			body = v
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(body)
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelError
		}
		s.log.Log(r.Context(), level, "request", "method", r.Method, "path", r.URL.Path, "status", status,
			"duration", time.Since(start).String())
	})
}

func (s *Server) authorized(r *http.Request) bool {
	if s.cfg.Token != "" {
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok &&
			subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.Token)) == 1 {
			return true
		}
	}
	if s.cfg.Username != "" && s.cfg.Password != "" {
		u, p, ok := r.BasicAuth()
		return ok && subtle.ConstantTimeCompare([]byte(u), []byte(s.cfg.Username)) == 1 &&
			subtle.ConstantTimeCompare([]byte(p), []byte(s.cfg.Password)) == 1
	}
	return false
}

var jobNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

func checkJobName(job string) error {
	if !jobNameRE.MatchString(job) || strings.Contains(job, "..") {
		return badRequest("invalid job name %q", job)
	}
	return nil
}

func (s *Server) monitCommand() []string {
	if len(s.cfg.Monit) > 0 {
		return s.cfg.Monit
	}
	agentMonit := filepath.Join(s.cfg.VcapRoot, "bosh", "bin", "monit")
	if _, err := os.Stat(agentMonit); err == nil {
		return []string{agentMonit}
	}
	return []string{"monit"}
}

func (s *Server) monit(r *http.Request) (any, error) {
	job, action := r.PathValue("job"), r.PathValue("action")
	if err := checkJobName(job); err != nil {
		return nil, err
	}
	switch action {
	case "stop", "start", "restart":
	default:
		return nil, badRequest("invalid monit action %q (stop, start or restart)", action)
	}
	argv := append(append([]string{}, s.monitCommand()...), action, job)
	return run(r.Context(), argv...)
}

// StoreDir is where a job's persistent data lives under root.
func StoreDir(root, job string) string { return filepath.Join(root, "store", job) }

// WipeResult lists what a wipe removed.
type WipeResult struct {
	Dir     string   `json:"dir"`
	Removed []string `json:"removed"`
}

func (s *Server) wipe(r *http.Request) (any, error) {
	job := r.PathValue("job")
	if err := checkJobName(job); err != nil {
		return nil, err
	}
	return Wipe(s.cfg.VcapRoot, job)
}

// Wipe does exactly what the operator's `rm -rf /var/vcap/store/<job>/*` does: it removes every entry of
// <root>/store/<job> that the shell glob matches (names not starting with a dot) and keeps the directory itself
// and its dot files. It refuses a job name or a directory (after resolving symlinks) outside <root>/store.
func Wipe(root, job string) (*WipeResult, error) {
	if err := checkJobName(job); err != nil {
		return nil, err
	}
	store, err := filepath.EvalSymlinks(filepath.Join(root, "store"))
	if err != nil {
		return nil, &apiError{Status: http.StatusNotFound, Err: fmt.Errorf("no store directory: %w", err)}
	}
	dir, err := filepath.EvalSymlinks(StoreDir(root, job))
	if err != nil {
		return nil, &apiError{Status: http.StatusNotFound, Err: fmt.Errorf("no store directory for job %s: %w", job, err)}
	}
	if rel, err := filepath.Rel(store, dir); err != nil || rel == "." || strings.HasPrefix(rel, "..") || strings.Contains(rel, string(filepath.Separator)) {
		return nil, badRequest("store directory of job %s resolves to %s, outside %s", job, dir, store)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	res := &WipeResult{Dir: dir, Removed: []string{}}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue // `*` does not match dot files
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return res, err
		}
		res.Removed = append(res.Removed, e.Name())
	}
	return res, nil
}

// PartitionRequest names the peers to cut this VM off from.
type PartitionRequest struct {
	Peers []string `json:"peers"`
}

// PartitionState lists the rules in the helper's chain.
type PartitionState struct {
	Rules []string `json:"rules"`
}

func (s *Server) partition(r *http.Request) (any, error) {
	var req PartitionRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		return nil, badRequest("decoding the request: %v", err)
	}
	if len(req.Peers) == 0 {
		return nil, badRequest("peers: at least one address is required")
	}
	addrs := make([]netip.Addr, 0, len(req.Peers))
	for _, p := range req.Peers {
		a, err := netip.ParseAddr(p)
		if err != nil || !a.Is4() {
			return nil, badRequest("peers: %q is not an IPv4 address", p)
		}
		addrs = append(addrs, a)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.ensureChain(r.Context()); err != nil {
		return nil, err
	}
	for _, a := range addrs {
		for _, dir := range []string{"-s", "-d"} {
			rule := []string{Chain, dir, a.String() + "/32", "-j", "DROP"}
			if _, err := s.iptables(r.Context(), append([]string{"-C"}, rule...)...); err == nil {
				continue // already there
			}
			if res, err := s.iptables(r.Context(), append([]string{"-A"}, rule...)...); err != nil {
				return res, err
			}
		}
	}
	return s.rules(r.Context())
}

func (s *Server) listPartition(r *http.Request) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.iptables(r.Context(), "-S", Chain); err != nil {
		return &PartitionState{Rules: []string{}}, nil // no chain: no partition
	}
	return s.rules(r.Context())
}

func (s *Server) heal(r *http.Request) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.iptables(r.Context(), "-S", Chain); err != nil {
		return &PartitionState{Rules: []string{}}, nil
	}
	if res, err := s.iptables(r.Context(), "-F", Chain); err != nil {
		return res, err
	}
	return s.rules(r.Context())
}

// ensureChain creates the chain and the jumps to it from INPUT and OUTPUT, once.
func (s *Server) ensureChain(ctx context.Context) error {
	if _, err := s.iptables(ctx, "-S", Chain); err != nil {
		if _, err := s.iptables(ctx, "-N", Chain); err != nil {
			return err
		}
	}
	for _, parent := range []string{"INPUT", "OUTPUT"} {
		if _, err := s.iptables(ctx, "-C", parent, "-j", Chain); err == nil {
			continue
		}
		if _, err := s.iptables(ctx, "-I", parent, "1", "-j", Chain); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) rules(ctx context.Context) (*PartitionState, error) {
	res, err := s.iptables(ctx, "-S", Chain)
	if err != nil {
		return nil, err
	}
	st := &PartitionState{Rules: []string{}}
	for _, l := range strings.Split(strings.TrimSpace(res.Stdout), "\n") {
		if strings.HasPrefix(l, "-A ") {
			st.Rules = append(st.Rules, l)
		}
	}
	return st, nil
}

func (s *Server) iptables(ctx context.Context, args ...string) (*CommandResult, error) {
	bin := s.cfg.Iptables
	if bin == "" {
		bin = lookTool("iptables")
	}
	return run(ctx, append([]string{bin, "-w"}, args...)...)
}

// lookTool finds a system tool in the sbin directories the agent's PATH has, then in PATH.
func lookTool(name string) string {
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return name
}

func (s *Server) status(r *http.Request) (any, error) {
	res, err := run(r.Context(), s.cfg.EtcdCtl, "status", "--json", "--config", s.cfg.EtcdCtlConfig)
	if err != nil {
		return res, err
	}
	if !json.Valid([]byte(res.Stdout)) {
		return res, fmt.Errorf("etcd_ctl status printed no JSON")
	}
	return json.RawMessage(res.Stdout), nil
}

// run runs a command and returns its result; a non-zero exit is an error (with the result).
func run(ctx context.Context, argv ...string) (*CommandResult, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := &CommandResult{Command: argv, Stdout: stdout.String(), Stderr: stderr.String()}
	if err != nil {
		res.ExitCode = -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			res.ExitCode = ee.ExitCode()
		}
		return res, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return res, nil
}

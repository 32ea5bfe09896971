// Package api serves the BOSH director HTTP API subset of docs/director-api.md over HTTPS with basic auth,
// so the bosh CLI and the acceptance suite can drive the local director exactly as they drive a real one. Its
// quirks live here: /info without auth, 302 to /tasks/N for long operations, Range on task output.
package api

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-release/etcd-release/src/director/deployer"
	"github.com/etcd-release/etcd-release/src/director/state"
	"github.com/etcd-release/etcd-release/src/director/tasks"
)

// Credentials for basic auth.
type Credentials struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

// Server is the director API.
type Server struct {
	Name  string
	UUID  string
	Creds Credentials
	Store *state.Store
	Tasks *tasks.Runner
	// Deployer performs deploys, state changes, errands and deletes; nil serves the API without VMs (those
	// endpoints then answer 503).
	Deployer *deployer.Deployer
	Log      *zap.Logger
	// MaxUploadBytes bounds a release or stemcell upload (0: DefaultMaxUploadBytes); a larger one is refused with
	// 413 and nothing of it is kept.
	MaxUploadBytes int64
	mux            *http.ServeMux
}

// DefaultMaxUploadBytes is the upload limit when Server.MaxUploadBytes is 0: well above a release with its Go
// toolchain blob, far below the disk a stray upload could fill.
const DefaultMaxUploadBytes = 4 << 30

// apiError is an error with an HTTP status and a BOSH error code.
type apiError struct {
	Status  int
	Code    int
	Message string
}

func (e *apiError) Error() string { return e.Message }

func errorf(status int, format string, a ...any) error {
	return &apiError{Status: status, Code: 100, Message: fmt.Sprintf(format, a...)}
}

// taskRedirect answers 302 to the task, as the director does for long operations.
type taskRedirect struct{ id int }

// raw is a response body written as is.
type raw struct {
	status      int
	contentType string
	body        []byte
	header      map[string]string
}

type handler func(r *http.Request) (any, error)

// Handler returns the HTTP handler of the API.
func (s *Server) Handler() http.Handler {
	if s.mux == nil {
		s.mux = http.NewServeMux()
		s.routes()
	}
	return s.mux
}

func (s *Server) handle(pattern string, h handler, auth bool) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		status := s.serve(w, r, h, auth)
		fields := []zap.Field{zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Int("status", status), zap.Duration("took", time.Since(start))}
		if status >= 500 {
			s.Log.Error("request", fields...)
		} else {
			s.Log.Debug("request", fields...)
		}
	})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, h handler, auth bool) int {
	if auth && !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="BOSH Director"`)
		return writeJSON(w, http.StatusUnauthorized, map[string]any{"code": 401, "description": "Not authorized: '" + r.URL.Path + "'"})
	}
	v, err := h(r)
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			ae = &apiError{Status: http.StatusInternalServerError, Code: 100, Message: err.Error()}
		}
		return writeJSON(w, ae.Status, map[string]any{"code": ae.Code, "description": ae.Message})
	}
	switch v := v.(type) {
	case taskRedirect:
		w.Header().Set("Location", fmt.Sprintf("/tasks/%d", v.id))
		w.WriteHeader(http.StatusFound)
		return http.StatusFound
	case raw:
		for k, val := range v.header {
			w.Header().Set(k, val)
		}
		if v.contentType != "" {
			w.Header().Set("Content-Type", v.contentType)
		}
		w.WriteHeader(v.status)
		_, _ = w.Write(v.body)
		return v.status
	}
	return writeJSON(w, http.StatusOK, v)
}

func writeJSON(w http.ResponseWriter, status int, v any) int {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
	return status
}

// user returns the authenticated user, or "" when the request carries no valid credentials.
func (s *Server) user(r *http.Request) string {
	u, p, ok := r.BasicAuth()
	if !ok {
		return ""
	}
	if subtle.ConstantTimeCompare([]byte(u), []byte(s.Creds.User)) == 1 && subtle.ConstantTimeCompare([]byte(p), []byte(s.Creds.Password)) == 1 {
		return u
	}
	return ""
}

func (s *Server) authorized(r *http.Request) bool { return s.user(r) != "" }

package erb

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/etcd-release/etcd-release/src/releasetools/release"
)

//go:embed render.rb
var renderScript string

// MonitSrc is the source name (and destination) under which the monit file is rendered and reported.
const MonitSrc = "monit"

// Renderer renders job templates with a real Ruby interpreter, one process per job render.
type Renderer struct {
	ruby string
}

// NewRenderer returns a Renderer that runs the given ruby binary; an empty path means `ruby` from PATH.
func NewRenderer(rubyPath string) (*Renderer, error) {
	if rubyPath == "" {
		rubyPath = "ruby"
	}
	p, err := exec.LookPath(rubyPath)
	if err != nil {
		return nil, fmt.Errorf("finding ruby: %w", err)
	}
	return &Renderer{ruby: p}, nil
}

// Ruby is the path of the interpreter the Renderer runs.
func (r *Renderer) Ruby() string { return r.ruby }

// Job is a job's spec, monit file and template sources: what a job archive (or a release source tree's
// jobs/<job>/ directory) holds.
type Job struct {
	Spec  *release.JobSpec
	Monit []byte
	// Templates maps each source name of Spec.Templates to its ERB text.
	Templates map[string][]byte
}

// JobFromRelease is the Job of a job read from a release tarball (release.Read).
func JobFromRelease(j *release.Job) *Job {
	return &Job{Spec: j.Spec, Monit: j.Monit, Templates: j.Templates}
}

// LoadJob reads a job directory: either a release source tree's jobs/<job>/ (spec) or an extracted job archive
// (job.MF), with monit and templates/.
func LoadJob(dir string) (*Job, error) {
	specData, err := os.ReadFile(filepath.Join(dir, "job.MF"))
	if errors.Is(err, os.ErrNotExist) {
		specData, err = os.ReadFile(filepath.Join(dir, "spec"))
	}
	if err != nil {
		return nil, fmt.Errorf("loading job %s: %w", dir, err)
	}
	spec, err := release.ParseJobSpec(specData)
	if err != nil {
		return nil, fmt.Errorf("loading job %s: %w", dir, err)
	}
	monit, err := os.ReadFile(filepath.Join(dir, "monit"))
	if err != nil {
		return nil, fmt.Errorf("loading job '%s': missing monit file: %w", spec.Name, err)
	}
	job := &Job{Spec: spec, Monit: monit, Templates: map[string][]byte{}}
	for _, src := range spec.TemplateSources() {
		if !filepath.IsLocal(src) {
			return nil, fmt.Errorf("loading job '%s': template '%s' is outside templates/", spec.Name, src)
		}
		data, err := os.ReadFile(filepath.Join(dir, "templates", filepath.FromSlash(src)))
		if err != nil {
			return nil, fmt.Errorf("loading job '%s': missing template '%s': %w", spec.Name, src, err)
		}
		job.Templates[src] = data
	}
	return job, nil
}

// RenderDir loads the job in dir (see LoadJob) and renders it (see Render).
func (r *Renderer) RenderDir(ctx context.Context, dir string, c Context) (map[string][]byte, error) {
	job, err := LoadJob(dir)
	if err != nil {
		return nil, err
	}
	return r.Render(ctx, job, c)
}

type scriptTemplate struct {
	Src  string `json:"src"`
	Dest string `json:"dest"`
	Body []byte `json:"body"`
}

type scriptOutput struct {
	Rendered []scriptTemplate `json:"rendered"`
	Errors   []struct {
		Src      string `json:"src"`
		Template string `json:"template"`
		Line     string `json:"line"`
		Message  string `json:"message"`
		Class    string `json:"class"`
	} `json:"errors"`
}

// Render renders the monit file and every template the job's spec lists, with c as the evaluation context, and
// returns the rendered files keyed by destination path (relative to /var/vcap/jobs/<job>/; the monit file under
// "monit").
//
// c.Properties are resolved against the spec first (ResolveProperties); a *PropertyTypeError is returned as is.
// When templates fail, the error is a *JobError listing a *TemplateError for each failed template (monit first,
// then the templates in spec order), formatted as BOSH does. Any other error means Ruby itself could not run.
func (r *Renderer) Render(ctx context.Context, job *Job, c Context) (map[string][]byte, error) {
	resolved, err := ResolveProperties(job.Spec, c.Properties)
	if err != nil {
		return nil, err
	}
	templates := []scriptTemplate{{Src: MonitSrc, Dest: MonitSrc, Body: job.Monit}}
	for _, src := range job.Spec.TemplateSources() {
		body, ok := job.Templates[src]
		if !ok {
			return nil, fmt.Errorf("rendering job '%s': missing template '%s'", job.Spec.Name, src)
		}
		templates = append(templates, scriptTemplate{Src: src, Dest: job.Spec.Templates[src], Body: body})
	}

	var in bytes.Buffer
	in.WriteString(`{"job":`)
	name, _ := json.Marshal(job.Spec.Name)
	in.Write(name)
	in.WriteString(`,"templates":`)
	tb, err := json.Marshal(templates)
	if err != nil {
		return nil, err
	}
	in.Write(tb)
	in.WriteString(`,"spec":`)
	if err := encodeValue(&in, c.specHash(resolved)); err != nil {
		return nil, fmt.Errorf("rendering job '%s': encoding context: %w", job.Spec.Name, err)
	}
	in.WriteString("}")

	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, r.ruby, "--disable-gems", "-e", renderScript)
	cmd.Stdin = &in
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.Env = rubyEnv()
	cmd.WaitDelay = 5 * time.Second
	runErr := cmd.Run()
	if ctxErr := ctx.Err(); ctxErr != nil {
		return nil, fmt.Errorf("rendering job '%s': %w", job.Spec.Name, ctxErr)
	}
	if runErr != nil {
		return nil, fmt.Errorf("rendering job '%s': ruby failed: %w: %s", job.Spec.Name, runErr, tail(stderr.String()))
	}
	var out scriptOutput
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return nil, fmt.Errorf("rendering job '%s': reading ruby output: %w: %s", job.Spec.Name, err, tail(stderr.String()))
	}
	if len(out.Errors) > 0 {
		jerr := &JobError{Job: job.Spec.Name}
		for _, e := range out.Errors {
			jerr.Errors = append(jerr.Errors, &TemplateError{
				Job: job.Spec.Name, Src: e.Src, Template: e.Template, Line: e.Line, Message: e.Message, RubyClass: e.Class,
			})
		}
		return nil, jerr
	}
	files := make(map[string][]byte, len(out.Rendered))
	for _, f := range out.Rendered {
		if _, dup := files[f.Dest]; dup {
			return nil, fmt.Errorf("rendering job '%s': two templates render to '%s'", job.Spec.Name, f.Dest)
		}
		files[f.Dest] = f.Body
	}
	return files, nil
}

// rubyEnv keeps the caller's environment but pins Ruby's encodings, so rendering does not depend on the locale
// the director was started with.
func rubyEnv() []string {
	env := []string{}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "RUBYOPT=") || strings.HasPrefix(kv, "LANG=") || strings.HasPrefix(kv, "LC_ALL=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LANG=C.UTF-8", "LC_ALL=C.UTF-8")
}

func tail(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 2000 {
		s = "…" + s[len(s)-2000:]
	}
	return s
}

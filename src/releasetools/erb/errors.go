package erb

import (
	"fmt"
	"strings"
)

// TemplateError is one template (or the monit file) that failed to render. Its message is BOSH's:
// Error filling in template '<file>' (line <n>: <message>).
type TemplateError struct {
	Job string
	// Src is the template's source name as the spec lists it ("monit" for the monit file).
	Src string
	// Template is the file name BOSH prints: the base name of Src.
	Template string
	// Line is the template line as BOSH prints it: a number, or "(unknown)".
	Line string
	// Message is the Ruby exception's message, e.g. Can't find property '["a.b"]'.
	Message string
	// RubyClass is the Ruby exception class (Bosh::Template::UnknownProperty, NoMethodError, ...).
	RubyClass string
}

func (e *TemplateError) Error() string {
	return fmt.Sprintf("Error filling in template '%s' (line %s: %s)", e.Template, e.Line, e.Message)
}

// JobError gathers every template of one job that failed to render.
type JobError struct {
	Job    string
	Errors []error
}

func (e *JobError) Error() string {
	return nest(fmt.Sprintf("Unable to render templates for job '%s'. Errors are:", e.Job), e.Errors)
}

func (e *JobError) Unwrap() []error { return e.Errors }

// InstanceGroupError gathers the render errors of an instance group's jobs (usually *JobError values).
type InstanceGroupError struct {
	InstanceGroup string
	Errors        []error
}

func (e *InstanceGroupError) Error() string {
	return nest(fmt.Sprintf("Unable to render jobs for instance group '%s'. Errors are:", e.InstanceGroup), e.Errors)
}

func (e *InstanceGroupError) Unwrap() []error { return e.Errors }

// DeploymentError is the one error a deploy reports when any template of any instance group failed to render.
type DeploymentError struct {
	Groups []*InstanceGroupError
}

// Error formats the whole tree exactly as a BOSH director does when rendering fails (cloudfoundry/bosh
// src/bosh-director/lib/bosh/director/core/templates/; source_erb.rb gives the innermost "Error filling in
// template" line): every error of every group, job and template, gathered before any VM changes, nested like this:
//
//	Unable to render instance groups for deployment. Errors are:
//	  - Unable to render jobs for instance group 'etcd'. Errors are:
//	    - Unable to render templates for job 'etcd'. Errors are:
//	      - Error filling in template 'etcd.json.erb' (line 4: Can't find property '["etcd.ca_cert"]')
func (e *DeploymentError) Error() string {
	errs := make([]error, 0, len(e.Groups))
	for _, g := range e.Groups {
		errs = append(errs, g)
	}
	return nest("Unable to render instance groups for deployment. Errors are:", errs)
}

func (e *DeploymentError) Unwrap() []error {
	errs := make([]error, 0, len(e.Groups))
	for _, g := range e.Groups {
		errs = append(errs, g)
	}
	return errs
}

// NewDeploymentError collects the failed instance groups, in the order given (manifest order), into one
// *DeploymentError. Groups that are nil or carry no errors are skipped; with none left it returns nil.
func NewDeploymentError(groups ...*InstanceGroupError) error {
	var failed []*InstanceGroupError
	for _, g := range groups {
		if g != nil && len(g.Errors) > 0 {
			failed = append(failed, g)
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return &DeploymentError{Groups: failed}
}

// nest writes header, then each error as a "- " item indented by two spaces, continuation lines of a multi-line
// message at the same indent as the dash: BOSH's FormatterHelper nesting, applied at every level.
func nest(header string, errs []error) string {
	var b strings.Builder
	b.WriteString(header)
	for _, err := range errs {
		if err == nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(err.Error()), "\n")
		b.WriteString("\n  - ")
		b.WriteString(lines[0])
		for _, l := range lines[1:] {
			b.WriteString("\n  ")
			b.WriteString(l)
		}
	}
	return b.String()
}

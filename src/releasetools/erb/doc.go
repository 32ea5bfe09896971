// Package erb renders BOSH job templates the way a BOSH director does, with the real Ruby ERB engine.
//
// Templates written for BOSH only work if they see exactly BOSH's evaluation context: p / if_p with spec
// defaults, spec.*, link / if_link, trim mode "-", and BOSH's error messages. Rather than reimplement ERB in Go,
// the local director hands each job to a ruby process (one per job render) running an embedded script that
// provides that context, so a template that renders here renders the same on a real director and vice versa.
//
// What stays in Go, unit-tested without Ruby: property resolution (ResolveProperties, after the director's
// deployment_plan/job.rb#bind_properties), link property resolution (ResolveLinkProperties, after its links/*),
// the instance spec handed to templates (Context) and BOSH's nested error report for a whole deployment
// (NewDeploymentError, as core/templates/* reports it). The director files named here live in cloudfoundry/bosh
// under src/bosh-director/lib/bosh/director/.
//
// Known differences from a BOSH director: a failing monit file is reported inside its job's list (BOSH aborts the
// job at the monit file and prints that error without the job header); a Ruby SyntaxError names the template and
// line (BOSH prints "(unknown)"); link('x').address returns the address the director put into the Link.
package erb

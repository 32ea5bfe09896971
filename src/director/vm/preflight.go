package vm

import (
	"fmt"
	"os/exec"
	"strings"
)

// HostTools are the programs the local director runs on the host, each with the Debian package that installs it
// (the same list scripts/install-deps installs): ip builds the VMs' networks, nft their guard table, unshare and
// nsenter their namespaces, monit runs in each VM, ruby renders the job templates (ERB).
var HostTools = []HostTool{
	{"ip", "iproute2"}, {"nft", "nftables"}, {"unshare", "util-linux"}, {"nsenter", "util-linux"},
	{"monit", "monit"}, {"ruby", "ruby"},
}

// HostTool is one program and its Debian package.
type HostTool struct{ Program, Package string }

// MissingTools is the decision of CheckHostTools: which tools are absent (found reports whether a program is on
// the machine), as one error naming every missing program and the packages to install, or nil.
func MissingTools(tools []HostTool, found func(string) bool) error {
	var progs, pkgs []string
	seen := map[string]bool{}
	for _, t := range tools {
		if found(t.Program) {
			continue
		}
		progs = append(progs, t.Program)
		if !seen[t.Package] {
			seen[t.Package] = true
			pkgs = append(pkgs, t.Package)
		}
	}
	if len(progs) == 0 {
		return nil
	}
	return fmt.Errorf("%s not found on this machine: install the Debian package(s) %s (scripts/install-deps does) and start the director again",
		strings.Join(progs, ", "), strings.Join(pkgs, " "))
}

// CheckHostTools refuses a director that could serve but never create a VM or render a template: it looks every
// HostTools program up through PATH and the sbin directories (toolPath).
func CheckHostTools() error {
	return MissingTools(HostTools, func(p string) bool {
		_, err := exec.LookPath(toolPath(p))
		return err == nil
	})
}

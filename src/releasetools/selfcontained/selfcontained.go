// Package selfcontained holds the check that the repository stands alone: no code comment, script or document
// may point a reader at a document that is not in the repository. Where a BOSH or etcd fact matters, the comment
// states it and names the upstream source file (for example cloudfoundry/bosh-agent agent/compiler/compiler_unix.go),
// and the director API subset is described in docs/director-api.md.
package selfcontained

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Forbidden are the references that once pointed outside the repository. They are assembled from parts so that
// this file does not match itself.
var Forbidden = []string{
	"bosh-" + "semantics",
	"DESIGN" + ".md",
	"../" + "shared",
	"shared" + "/reference",
	"reference/" + "director-api",
	"etcd-" + "notes.md",
}

// Finding is one forbidden reference: file (relative to the repository root), 1-based line, and what matched.
type Finding struct {
	File    string
	Line    int
	Pattern string
}

func (f Finding) String() string { return fmt.Sprintf("%s:%d: cites %q", f.File, f.Line, f.Pattern) }

// Scan returns the forbidden references in one file's content.
func Scan(name string, content []byte) []Finding {
	var out []Finding
	if bytes.IndexByte(content, 0) >= 0 {
		return nil // binary
	}
	sc := bufio.NewScanner(bytes.NewReader(content))
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for n := 1; sc.Scan(); n++ {
		for _, p := range Forbidden {
			if strings.Contains(sc.Text(), p) {
				out = append(out, Finding{File: name, Line: n, Pattern: p})
			}
		}
	}
	return out
}

// RepoFiles lists the files git would commit in the repository at root: tracked files plus untracked ones that
// are not ignored, so build outputs and caches are skipped and a new file is checked before it is added.
func RepoFiles(root string) ([]string, error) {
	cmd := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("git ls-files in %s: %w", root, err)
	}
	var files []string
	for _, f := range strings.Split(string(out), "\x00") {
		if f != "" {
			files = append(files, f)
		}
	}
	return files, nil
}

// ScanRepo scans every file RepoFiles lists. A listed file that no longer exists (deleted, not yet staged) is
// skipped.
func ScanRepo(root string) ([]Finding, error) {
	files, err := RepoFiles(root)
	if err != nil {
		return nil, err
	}
	var out []Finding
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(root, f))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, Scan(f, b)...)
	}
	return out, nil
}

package selfcontained

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestScan(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content string
		want    []Finding
	}{
		{"clean", "// The agent runs bash -x packaging (cloudfoundry/bosh-agent agent/compiler/compiler_unix.go).\n", nil},
		{"section citation", "a\n// placement (bosh-" + "semantics §6)\n", []Finding{{"f", 2, "bosh-" + "semantics"}}},
		{"design doc", "// Invariants (see DESIGN" + ".md): only\n", []Finding{{"f", 1, "DESIGN" + ".md"}}},
		{"shared path", "(`../" + "shared" + "/reference/" + "director-api.md`)\n", []Finding{
			{"f", 1, "../" + "shared"}, {"f", 1, "shared" + "/reference"}, {"f", 1, "reference/" + "director-api"}}},
		{"our own api doc is fine", "see docs/director-api.md\n", nil},
		{"binary skipped", "\x00bosh-" + "semantics", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, Scan("f", []byte(tc.content)))
		})
	}
}

// TestRepositoryCitesNothingOutside is the guard: it fails, naming file and line, when a comment, script or
// document of this repository cites a document that is not in it.
func TestRepositoryCitesNothingOutside(t *testing.T) {
	root, err := filepath.Abs("../../..")
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(root, "go.mod"))
	found, err := ScanRepo(root)
	require.NoError(t, err)
	var lines []string
	for _, f := range found {
		lines = append(lines, f.String())
	}
	require.Empty(t, lines, "state the fact and name the upstream source file instead:\n%s", strings.Join(lines, "\n"))
}

// TestScanRepoSeesNewFiles proves the guard reads untracked, not ignored files and skips ignored ones, on a
// scratch git repository.
func TestScanRepoSeesNewFiles(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	dir := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput()
		require.NoError(t, err, string(out))
	}
	run("init", "-q")
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".gitignore"), []byte("/.cache/\n"), 0o644))
	require.NoError(t, os.Mkdir(filepath.Join(dir, ".cache"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".cache", "x.md"), []byte("DESIGN"+".md\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "new.go"), []byte("// ok\n// see DESIGN"+".md\n"), 0o644))
	found, err := ScanRepo(dir)
	require.NoError(t, err)
	require.Equal(t, []Finding{{"new.go", 2, "DESIGN" + ".md"}}, found)
}

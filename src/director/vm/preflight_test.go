package vm

import (
	"strings"
	"testing"
)

func TestMissingTools(t *testing.T) {
	tools := []HostTool{{"ip", "iproute2"}, {"unshare", "util-linux"}, {"nsenter", "util-linux"}, {"ruby", "ruby"}}
	for _, tc := range []struct {
		name    string
		present []string
		want    string // "" = no error
	}{
		{"all present", []string{"ip", "unshare", "nsenter", "ruby"}, ""},
		{"ruby missing", []string{"ip", "unshare", "nsenter"}, "ruby not found on this machine: install the Debian package(s) ruby "},
		{"one package for two tools", []string{"ip", "ruby"}, "unshare, nsenter not found on this machine: install the Debian package(s) util-linux "},
		{"nothing", nil, "ip, unshare, nsenter, ruby not found on this machine: install the Debian package(s) iproute2 util-linux ruby "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			have := map[string]bool{}
			for _, p := range tc.present {
				have[p] = true
			}
			err := MissingTools(tools, func(p string) bool { return have[p] })
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error = %v, want prefix %q", err, tc.want)
			}
		})
	}
}

// TestCheckHostToolsOnThisMachine: the test machine has every tool installed (scripts/install-deps), so the real
// lookup must find them all.
func TestCheckHostToolsOnThisMachine(t *testing.T) {
	if err := CheckHostTools(); err != nil {
		t.Fatal(err)
	}
}

package jobtemplates

import (
	"fmt"
	"os"
	"regexp"

	"gopkg.in/yaml.v3"

	"github.com/etcd-release/etcd-release/src/releasetools/opsfile"
	"github.com/etcd-release/etcd-release/src/releasetools/release"
)

// LoadManifest reads a deployment manifest, applies ops files in order (the bosh CLI's -o) and interpolates
// ((variables)) from vars (-l); a variable missing from vars is an error.
func LoadManifest(path string, opsFiles []string, vars map[string]any) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if data, err = opsfile.ApplyToYAML(data, opsFiles); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	doc, err = interpolate(release.Normalize(doc), vars)
	if err != nil {
		return nil, err
	}
	m, ok := doc.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: not a hash", path)
	}
	return m, nil
}

var varRE = regexp.MustCompile(`^\(\(([A-Za-z0-9_./-]+)\)\)$`)

func interpolate(node any, vars map[string]any) (any, error) {
	switch n := node.(type) {
	case map[string]any:
		for k, v := range n {
			nv, err := interpolate(v, vars)
			if err != nil {
				return nil, err
			}
			n[k] = nv
		}
	case []any:
		for i, v := range n {
			nv, err := interpolate(v, vars)
			if err != nil {
				return nil, err
			}
			n[i] = nv
		}
	case string:
		if m := varRE.FindStringSubmatch(n); m != nil {
			v, ok := vars[m[1]]
			if !ok {
				return nil, fmt.Errorf("variable %q is not set", m[1])
			}
			return v, nil
		}
	}
	return node, nil
}

// InstanceGroup returns the manifest's instance group called name.
func InstanceGroup(manifest map[string]any, name string) (map[string]any, error) {
	groups, _ := manifest["instance_groups"].([]any)
	for _, g := range groups {
		if h, ok := g.(map[string]any); ok && h["name"] == name {
			return h, nil
		}
	}
	return nil, fmt.Errorf("no instance group %q", name)
}

// Job returns the group's job entry called name.
func Job(group map[string]any, name string) (map[string]any, error) {
	jobs, _ := group["jobs"].([]any)
	for _, j := range jobs {
		if h, ok := j.(map[string]any); ok && h["name"] == name {
			return h, nil
		}
	}
	return nil, fmt.Errorf("instance group %v has no job %q", group["name"], name)
}

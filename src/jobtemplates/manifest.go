package jobtemplates

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/etcd-release/etcd-release/src/release"
)

// LoadManifest reads a deployment manifest, applies ops files in order (the bosh CLI's -o) and interpolates
// ((variables)) from vars (-l); a variable missing from vars is an error.
func LoadManifest(path string, opsFiles []string, vars map[string]any) (map[string]any, error) {
	var doc any
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	doc = release.Normalize(doc)
	for _, p := range opsFiles {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		var ops []Op
		if err := yaml.Unmarshal(data, &ops); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		for i, op := range ops {
			op.Value = release.Normalize(op.Value)
			if doc, err = op.Apply(doc); err != nil {
				return nil, fmt.Errorf("%s: operation %d (%s %s): %w", p, i, op.Type, op.Path, err)
			}
		}
	}
	doc, err = interpolate(doc, vars)
	if err != nil {
		return nil, err
	}
	m, ok := doc.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: not a hash", path)
	}
	return m, nil
}

// Op is one operation of a bosh ops file. Supported: `replace` and `remove`; path tokens are hash keys (with a
// trailing `?` creating missing hashes), array indexes, `-` (append) and `key=value` (the array element whose key
// has that value, `key=value?` creating it when absent).
type Op struct {
	Type  string `yaml:"type"`
	Path  string `yaml:"path"`
	Value any    `yaml:"value"`
}

// Apply returns doc with the operation applied.
func (op Op) Apply(doc any) (any, error) {
	if !strings.HasPrefix(op.Path, "/") {
		return nil, fmt.Errorf("path must start with /")
	}
	tokens := strings.Split(op.Path[1:], "/")
	switch op.Type {
	case "replace", "remove":
	default:
		return nil, fmt.Errorf("unsupported operation type %q", op.Type)
	}
	return apply(doc, tokens, op, false)
}

var matcherRE = regexp.MustCompile(`^([^=]+)=(.*)$`)

func apply(node any, tokens []string, op Op, optional bool) (any, error) {
	if len(tokens) == 0 {
		return op.Value, nil
	}
	tok, last := tokens[0], len(tokens) == 1
	opt := optional || strings.HasSuffix(tok, "?")
	tok = strings.TrimSuffix(tok, "?")
	switch n := node.(type) {
	case map[string]any:
		child, ok := n[tok]
		if last && op.Type == "remove" {
			if !ok && !opt {
				return nil, fmt.Errorf("no key %q", tok)
			}
			delete(n, tok)
			return n, nil
		}
		if !ok {
			if !opt {
				return nil, fmt.Errorf("no key %q", tok)
			}
			child = newContainer(tokens[1:])
		}
		v, err := apply(child, tokens[1:], op, opt)
		if err != nil {
			return nil, err
		}
		n[tok] = v
		return n, nil
	case []any:
		if tok == "-" {
			if !last || op.Type != "replace" {
				return nil, fmt.Errorf("'-' must be the last token of a replace")
			}
			return append(n, op.Value), nil
		}
		idx := -1
		if i, err := strconv.Atoi(tok); err == nil {
			idx = i
		} else if m := matcherRE.FindStringSubmatch(tok); m != nil {
			for i, el := range n {
				if h, ok := el.(map[string]any); ok && fmt.Sprint(h[m[1]]) == m[2] {
					idx = i
					break
				}
			}
			if idx < 0 && opt && op.Type == "replace" {
				n = append(n, map[string]any{m[1]: m[2]})
				idx = len(n) - 1
			}
		}
		if idx < 0 || idx >= len(n) {
			return nil, fmt.Errorf("no array element %q", tok)
		}
		if last && op.Type == "remove" {
			return append(n[:idx], n[idx+1:]...), nil
		}
		v, err := apply(n[idx], tokens[1:], op, opt)
		if err != nil {
			return nil, err
		}
		n[idx] = v
		return n, nil
	case nil:
		if !optional {
			return nil, fmt.Errorf("no node at %q", tok)
		}
		return apply(newContainer(tokens), tokens, op, optional)
	}
	return nil, fmt.Errorf("cannot descend into %T at %q", node, tok)
}

func newContainer(rest []string) any {
	if len(rest) > 0 {
		t := strings.TrimSuffix(rest[0], "?")
		if t == "-" || matcherRE.MatchString(t) {
			return []any{}
		}
		if _, err := strconv.Atoi(t); err == nil {
			return []any{}
		}
	}
	return map[string]any{}
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

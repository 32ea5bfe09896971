// Package opsfile applies bosh ops files (the bosh CLI's `-o`) to a manifest: the local director's deploy
// command and the template tests both build manifests from manifests/etcd.yml plus manifests/operations/*.yml,
// so operators' ops files mean the same thing everywhere.
package opsfile

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/etcd-release/etcd-release/src/releasetools/release"
)

// ApplyFiles applies the ops files in order to doc (a YAML tree of map[string]any / []any) and returns the
// result. An error names the file, the operation's index, type and path.
func ApplyFiles(doc any, paths []string) (any, error) {
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("reading ops file: %w", err)
		}
		var ops []Op
		if err := yaml.Unmarshal(data, &ops); err != nil {
			return nil, fmt.Errorf("%s: not a list of operations: %w", p, err)
		}
		for i, op := range ops {
			op.Value = release.Normalize(op.Value)
			if doc, err = op.Apply(doc); err != nil {
				return nil, fmt.Errorf("%s: operation %d (%s %s): %w", p, i, op.Type, op.Path, err)
			}
		}
	}
	return doc, nil
}

// ApplyToYAML parses a manifest, applies the ops files and marshals it again. ((variables)) are left as they
// are (the bosh CLI applies ops files before interpolating).
func ApplyToYAML(manifest []byte, paths []string) ([]byte, error) {
	if len(paths) == 0 {
		return manifest, nil
	}
	var doc any
	if err := yaml.Unmarshal(manifest, &doc); err != nil {
		return nil, fmt.Errorf("manifest is not YAML: %w", err)
	}
	doc, err := ApplyFiles(release.Normalize(doc), paths)
	if err != nil {
		return nil, err
	}
	return yaml.Marshal(doc)
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
		// "<index or matcher>:before" / ":after" insert the value next to that element (the last token of a
		// replace only), e.g. /instance_groups/name=etcd:before puts a group ahead of etcd in deploy order.
		insert := ""
		for _, mod := range []string{":before", ":after"} {
			if t, ok := strings.CutSuffix(tok, mod); ok {
				if !last || op.Type != "replace" {
					return nil, fmt.Errorf("%q must be the last token of a replace", mod)
				}
				tok, insert = t, mod
			}
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
		if insert != "" {
			if insert == ":after" {
				idx++
			}
			return append(n[:idx:idx], append([]any{op.Value}, n[idx:]...)...), nil
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

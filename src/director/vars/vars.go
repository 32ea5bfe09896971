// Package vars interpolates ((name)) placeholders in a manifest on the client side, as `bosh deploy -l FILE -v
// k=v` does before it uploads the manifest: the local director has no config server, so every placeholder must
// be resolved before the manifest leaves the client. Unlike the bosh CLI (which sends unresolved placeholders on
// to the director's config server) an unresolved placeholder is an error that names it.
package vars

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// placeholder matches ((name)), ((name.key)) and ((/absolute/name)).
var placeholder = regexp.MustCompile(`\(\(([-/.\w\p{L}!:]+)\)\)`)

// Vars are variable values by name.
type Vars map[string]any

// LoadFile merges a YAML vars file (a hash of name: value) into v; later files win, as with repeated -l.
func (v Vars) LoadFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("vars file %s: %w", path, err)
	}
	for k, val := range m {
		v[k] = val
	}
	return nil
}

// Set parses "name=value" (-v); the value is a string.
func (v Vars) Set(kv string) error {
	name, value, ok := strings.Cut(kv, "=")
	if !ok || name == "" {
		return fmt.Errorf("-v %q: expected name=value", kv)
	}
	v[name] = value
	return nil
}

// UnresolvedError lists placeholders no variable resolves.
type UnresolvedError struct{ Names []string }

func (e *UnresolvedError) Error() string {
	return fmt.Sprintf("expected to find variables: %s", strings.Join(e.Names, ", "))
}

// Interpolate replaces every placeholder in the YAML document: a scalar that is exactly one placeholder becomes
// the variable's value (any type); a placeholder inside a longer string is replaced by the value's text.
func Interpolate(doc []byte, v Vars) ([]byte, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		return nil, fmt.Errorf("parsing manifest: %w", err)
	}
	missing := map[string]bool{}
	var walk func(n *yaml.Node) error
	walk = func(n *yaml.Node) error {
		if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "((") {
			if m := placeholder.FindStringSubmatch(n.Value); m != nil && m[0] == n.Value {
				val, ok := v.lookup(m[1])
				if !ok {
					missing[m[1]] = true
					return nil
				}
				var repl yaml.Node
				if err := repl.Encode(val); err != nil {
					return err
				}
				*n = repl
				return nil
			}
			var err error
			n.Value = placeholder.ReplaceAllStringFunc(n.Value, func(s string) string {
				name := placeholder.FindStringSubmatch(s)[1]
				val, ok := v.lookup(name)
				if !ok {
					missing[name] = true
					return s
				}
				switch val.(type) {
				case map[string]any, []any:
					err = fmt.Errorf("variable '%s' is a hash or list and cannot be embedded in the string %q", name, n.Value)
					return s
				}
				return fmt.Sprint(val)
			})
			if err != nil {
				return err
			}
			n.Tag = "!!str"
			return nil
		}
		for _, c := range n.Content {
			if err := walk(c); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(&root); err != nil {
		return nil, err
	}
	if len(missing) > 0 {
		var names []string
		for n := range missing {
			names = append(names, n)
		}
		slices.Sort(names)
		return nil, &UnresolvedError{Names: names}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&root); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// lookup resolves "name" or "name.key.subkey".
func (v Vars) lookup(path string) (any, bool) {
	parts := strings.Split(path, ".")
	val, ok := v[parts[0]]
	if !ok {
		return nil, false
	}
	for _, p := range parts[1:] {
		m, isMap := val.(map[string]any)
		if !isMap {
			return nil, false
		}
		if val, ok = m[p]; !ok {
			return nil, false
		}
	}
	return val, true
}

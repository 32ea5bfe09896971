package release

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"

	"gopkg.in/yaml.v3"
)

// JobSpec is a job's spec file: `jobs/<job>/spec` in a release source tree, `job.MF` inside a job archive
// (the director reads it in cloudfoundry/bosh src/bosh-director/lib/bosh/director/models/template.rb). The two are
// the same document.
type JobSpec struct {
	Name        string
	Description string
	// Templates maps a source file under templates/ to its destination relative to /var/vcap/jobs/<job>/.
	Templates map[string]string
	Packages  []string
	// Properties maps a dotted property name to its declaration.
	Properties map[string]PropertyDef
	Consumes   []LinkDef
	Provides   []LinkDef

	templateOrder []string
	propertyOrder []string
}

// PropertyDef declares one job property.
type PropertyDef struct {
	Description string `yaml:"description"`
	// Default is the spec default; nil when the spec has none.
	Default any    `yaml:"default"`
	Example any    `yaml:"example"`
	Type    string `yaml:"type"`
}

// LinkDef is one entry of a job spec's `consumes` or `provides` list.
type LinkDef struct {
	Name     string `yaml:"name"`
	Type     string `yaml:"type"`
	Optional bool   `yaml:"optional"`
	// Properties are the dotted property names a provider shares through the link (provides only).
	Properties []string `yaml:"properties"`
}

// TemplateSources returns the template source names in the order the spec lists them, which is the order BOSH
// renders them and reports their errors in.
func (s *JobSpec) TemplateSources() []string {
	out := make([]string, 0, len(s.Templates))
	seen := map[string]bool{}
	for _, src := range s.templateOrder {
		if _, ok := s.Templates[src]; ok && !seen[src] {
			out = append(out, src)
			seen[src] = true
		}
	}
	for _, src := range sortedKeys(s.Templates) { // entries added after parsing
		if !seen[src] {
			out = append(out, src)
		}
	}
	return out
}

// PropertyNames returns the declared property names in spec order.
func (s *JobSpec) PropertyNames() []string {
	out := make([]string, 0, len(s.Properties))
	seen := map[string]bool{}
	for _, n := range s.propertyOrder {
		if _, ok := s.Properties[n]; ok && !seen[n] {
			out = append(out, n)
			seen[n] = true
		}
	}
	for _, n := range sortedKeys(s.Properties) {
		if !seen[n] {
			out = append(out, n)
		}
	}
	return out
}

// Provider returns the spec's `provides` entry called name.
func (s *JobSpec) Provider(name string) (LinkDef, bool) {
	for _, p := range s.Provides {
		if p.Name == name {
			return p, true
		}
	}
	return LinkDef{}, false
}

// ParseJobSpec parses a job spec (or job.MF) document.
func ParseJobSpec(data []byte) (*JobSpec, error) {
	var doc struct {
		Name        string    `yaml:"name"`
		Description string    `yaml:"description"`
		Templates   yaml.Node `yaml:"templates"`
		Packages    []string  `yaml:"packages"`
		Properties  yaml.Node `yaml:"properties"`
		Consumes    []LinkDef `yaml:"consumes"`
		Provides    []LinkDef `yaml:"provides"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parsing job spec: %w", err)
	}
	if doc.Name == "" {
		return nil, fmt.Errorf("parsing job spec: missing 'name'")
	}
	s := &JobSpec{
		Name:        doc.Name,
		Description: doc.Description,
		Templates:   map[string]string{},
		Packages:    doc.Packages,
		Properties:  map[string]PropertyDef{},
		Consumes:    doc.Consumes,
		Provides:    doc.Provides,
	}
	if err := eachMapEntry(&doc.Templates, func(key string, val *yaml.Node) error {
		var dest string
		if err := val.Decode(&dest); err != nil {
			return fmt.Errorf("template %q: %w", key, err)
		}
		if dest == "" {
			return fmt.Errorf("template %q: empty destination", key)
		}
		// Destinations are relative to /var/vcap/jobs/<job>/ and sources to the job's templates/: neither may
		// leave its directory (an absolute path or a ".." would let a release write anywhere on the VM).
		if !filepath.IsLocal(filepath.FromSlash(dest)) {
			return fmt.Errorf("template %q: destination %q leaves the job's directory (it must be a relative path without ..)", key, dest)
		}
		if !filepath.IsLocal(filepath.FromSlash(key)) {
			return fmt.Errorf("template %q: the source leaves the job's templates directory (it must be a relative path without ..)", key)
		}
		if _, dup := s.Templates[key]; dup {
			return fmt.Errorf("template %q listed twice", key)
		}
		s.Templates[key] = dest
		s.templateOrder = append(s.templateOrder, key)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("job %q: templates: %w", s.Name, err)
	}
	if err := eachMapEntry(&doc.Properties, func(key string, val *yaml.Node) error {
		var def PropertyDef
		if val.Kind != 0 && !(val.Kind == yaml.ScalarNode && val.Tag == "!!null") {
			if err := val.Decode(&def); err != nil {
				return fmt.Errorf("property %q: %w", key, err)
			}
		}
		def.Default = Normalize(def.Default)
		def.Example = Normalize(def.Example)
		s.Properties[key] = def
		s.propertyOrder = append(s.propertyOrder, key)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("job %q: properties: %w", s.Name, err)
	}
	for i, l := range append(append([]LinkDef{}, s.Consumes...), s.Provides...) {
		if l.Name == "" || l.Type == "" {
			return nil, fmt.Errorf("job %q: link #%d needs both name and type", s.Name, i)
		}
	}
	return s, nil
}

// eachMapEntry calls fn for every key of a YAML mapping node, in document order. An absent or null node is an
// empty mapping.
func eachMapEntry(n *yaml.Node, fn func(key string, val *yaml.Node) error) error {
	switch {
	case n.Kind == 0:
		return nil
	case n.Kind == yaml.ScalarNode && n.Tag == "!!null":
		return nil
	case n.Kind != yaml.MappingNode:
		return fmt.Errorf("line %d: expected a mapping", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if err := fn(n.Content[i].Value, n.Content[i+1]); err != nil {
			return err
		}
	}
	return nil
}

// Normalize turns a value decoded from YAML into one that encoding/json accepts: every map[any]any becomes a
// map[string]any (keys formatted with %v), recursively.
func Normalize(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = Normalize(e)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[fmt.Sprint(k)] = Normalize(e)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = Normalize(e)
		}
		return out
	default:
		return v
	}
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

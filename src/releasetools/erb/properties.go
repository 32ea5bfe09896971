package erb

import (
	"fmt"
	"strings"

	"github.com/etcd-release/etcd-release/src/releasetools/release"
)

// PropertyTypeError is BOSH's InvalidPropertyType: a dotted property path runs through a value that is not a hash.
type PropertyTypeError struct {
	Property string
	// Got is the Ruby class name of the value found (String, Integer, Float, TrueClass, FalseClass, Array).
	Got string
}

func (e *PropertyTypeError) Error() string {
	return fmt.Sprintf("Property '%s' expects a hash, but received '%s'", e.Property, e.Got)
}

// ResolveProperties computes a job's properties the way a BOSH director binds them (cloudfoundry/bosh
// src/bosh-director/lib/bosh/director/deployment_plan/job.rb#bind_properties): for every
// property the spec declares, the value at that dotted path of raw if it is non-nil, else the spec default, else
// nil. Keys the spec does not declare are dropped. raw is the base hash (the manifest job's `properties`, or the
// merged global and group properties); it is not modified. The result is a nested hash.
func ResolveProperties(spec *release.JobSpec, raw map[string]any) (map[string]any, error) {
	out := map[string]any{}
	for _, name := range spec.PropertyNames() {
		v, err := lookupForCopy(raw, name)
		if err != nil {
			return nil, err
		}
		if v == nil {
			v = spec.Properties[name].Default
		}
		if err := setDotted(out, name, release.Normalize(v)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ResolveLinkProperties computes the `properties` of the link a provider job offers as linkName: only the
// properties the provider's spec lists under that `provides` entry, each from the provider's manifest properties
// (rawProviderProperties, as for ResolveProperties) or else the spec default. Listing a property the spec does not
// declare is an error, as in BOSH.
func ResolveLinkProperties(provider *release.JobSpec, rawProviderProperties map[string]any, linkName string) (map[string]any, error) {
	def, ok := provider.Provider(linkName)
	if !ok {
		return nil, fmt.Errorf("job '%s' does not provide a link named '%s'", provider.Name, linkName)
	}
	out := map[string]any{}
	for _, name := range def.Properties {
		pd, declared := provider.Properties[name]
		if !declared {
			return nil, fmt.Errorf("Link property %s in template %s is not defined in release spec", name, provider.Name)
		}
		v, err := lookupForCopy(rawProviderProperties, name)
		if err != nil {
			return nil, err
		}
		if v == nil {
			v = pd.Default
		}
		if err := setDotted(out, name, release.Normalize(v)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// lookupForCopy walks a dotted name through raw. Every node it steps into must be a hash (else a
// PropertyTypeError); a missing key yields nil.
func lookupForCopy(raw map[string]any, name string) (any, error) {
	var node any = raw
	for _, key := range strings.Split(name, ".") {
		m, ok := asHash(node)
		if !ok {
			return nil, &PropertyTypeError{Property: name, Got: rubyClass(node)}
		}
		node = m[key]
		if node == nil {
			return nil, nil
		}
	}
	return node, nil
}

// setDotted stores v at a dotted path of out, creating intermediate hashes.
func setDotted(out map[string]any, name string, v any) error {
	keys := strings.Split(name, ".")
	node := out
	for _, key := range keys[:len(keys)-1] {
		switch next := node[key].(type) {
		case nil:
			m := map[string]any{}
			node[key] = m
			node = m
		case map[string]any:
			node = next
		default:
			return &PropertyTypeError{Property: name, Got: rubyClass(next)}
		}
	}
	node[keys[len(keys)-1]] = v
	return nil
}

func asHash(v any) (map[string]any, bool) {
	switch t := v.(type) {
	case map[string]any:
		return t, true
	case map[any]any:
		return release.Normalize(t).(map[string]any), true
	case nil:
		// BOSH treats a missing base hash as {}.
		return map[string]any{}, true
	}
	return nil, false
}

// rubyClass names the Ruby class a YAML/JSON value would have, for BOSH-identical messages.
func rubyClass(v any) string {
	switch t := v.(type) {
	case string:
		return "String"
	case bool:
		if t {
			return "TrueClass"
		}
		return "FalseClass"
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return "Integer"
	case float32, float64:
		return "Float"
	case []any, []string:
		return "Array"
	case map[string]any, map[any]any:
		return "Hash"
	}
	return fmt.Sprintf("%T", v)
}

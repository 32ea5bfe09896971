// Package opsfile applies bosh ops files (the bosh CLI's `-o`) to a manifest with github.com/cppforlife/go-patch,
// the library the bosh CLI itself uses, so `-o` means exactly what it means to `bosh deploy -o`: the same path
// syntax (keys, `key?`, indexes, `-`, `name=value`, `:before`/`:after`/`:prev`/`:next`), the same operation
// types (replace, remove, test), the same errors. The local director's deploy command and the template tests
// (src/releasetools/jobtemplates) both build manifests from manifests/etcd.yml plus manifests/operations/*.yml
// through it.
//
// The steps follow the bosh CLI (cloudfoundry/bosh-cli): cmd/opts/ops_file_arg.go reads each file as a YAML list
// of patch.OpDefinition and builds it with patch.NewOpsFromDefinitions; director/template/template.go parses the
// manifest with gopkg.in/yaml.v2, applies the ops, then interpolates ((variables)) and marshals with yaml.v2.
// go-patch walks yaml.v2 trees (map[interface{}]interface{}), which is why this package parses with yaml.v2.
package opsfile

import (
	"fmt"
	"os"

	"github.com/cppforlife/go-patch/patch"
	"gopkg.in/yaml.v2"
)

// ReadFile reads one ops file into go-patch operations. An error names the file.
func ReadFile(path string) (patch.Ops, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading ops file: %w", err)
	}
	var defs []patch.OpDefinition
	if err := yaml.Unmarshal(data, &defs); err != nil {
		return nil, fmt.Errorf("ops file %s: not a list of operations: %w", path, err)
	}
	ops, err := patch.NewOpsFromDefinitions(defs)
	if err != nil {
		return nil, fmt.Errorf("ops file %s: %w", path, err)
	}
	return ops, nil
}

// ApplyToYAML parses a manifest, applies the ops files in order and marshals it again. ((variables)) are left as
// they are: the bosh CLI applies ops files before interpolating, so an ops file may add ((variables)) of its own.
// Without ops files the manifest is returned unchanged. An error names the ops file whose operation failed.
func ApplyToYAML(manifest []byte, paths []string) ([]byte, error) {
	if len(paths) == 0 {
		return manifest, nil
	}
	var doc interface{}
	if err := yaml.Unmarshal(manifest, &doc); err != nil {
		return nil, fmt.Errorf("manifest is not YAML: %w", err)
	}
	for _, p := range paths {
		ops, err := ReadFile(p)
		if err != nil {
			return nil, err
		}
		// Applying file by file is what the CLI's concatenated patch.Ops does; it lets the error name the file.
		if doc, err = ops.Apply(doc); err != nil {
			return nil, fmt.Errorf("ops file %s: %w", p, err)
		}
	}
	return yaml.Marshal(doc)
}

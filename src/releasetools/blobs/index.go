package blobs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"

	"gopkg.in/yaml.v3"
)

// IndexEntry is one blob in config/blobs.yml, in the bosh CLI's format: the blob's path relative to blobs/ maps to
// its size, its blobstore object id (absent until `bosh upload-blobs` uploads it) and its digest.
type IndexEntry struct {
	Size     int64  `yaml:"size"`
	ObjectID string `yaml:"object_id,omitempty"`
	SHA      string `yaml:"sha"`
}

// ReadIndex reads config/blobs.yml; a missing or empty file is an empty index.
func ReadIndex(p string) (map[string]IndexEntry, error) {
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]IndexEntry{}, nil
	}
	if err != nil {
		return nil, err
	}
	idx := map[string]IndexEntry{}
	if err := yaml.Unmarshal(data, &idx); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if idx == nil {
		idx = map[string]IndexEntry{}
	}
	return idx, nil
}

// FormatIndex renders an index as the bosh CLI writes config/blobs.yml: a YAML document with the blob paths
// sorted.
func FormatIndex(idx map[string]IndexEntry) []byte {
	var buf bytes.Buffer
	buf.WriteString("---\n")
	if len(idx) == 0 {
		return []byte("--- {}\n")
	}
	for _, k := range slices.Sorted(maps.Keys(idx)) {
		e := idx[k]
		key, _ := yaml.Marshal(k) // quotes paths YAML would misread
		fmt.Fprintf(&buf, "%s:\n", bytes.TrimSpace(key))
		fmt.Fprintf(&buf, "  size: %d\n", e.Size)
		if e.ObjectID != "" {
			fmt.Fprintf(&buf, "  object_id: %s\n", e.ObjectID)
		}
		fmt.Fprintf(&buf, "  sha: %s\n", e.SHA)
	}
	return buf.Bytes()
}

// WriteIndex writes idx to p when its content changes.
func WriteIndex(p string, idx map[string]IndexEntry) error {
	data := FormatIndex(idx)
	if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, data) {
		return nil
	}
	return os.WriteFile(p, data, 0o644)
}

package metrics

import (
	"os"
	"path/filepath"
)

func mkdirs(dir string, names ...string) error {
	for _, n := range names {
		if err := os.MkdirAll(filepath.Join(dir, n), 0o700); err != nil {
			return err
		}
	}
	return nil
}

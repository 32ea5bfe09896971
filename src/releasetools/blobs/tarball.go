package blobs

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"time"
)

// entryTime is the modification time of every tarball entry, so a blob depends on content only.
var entryTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// entry is one file, directory or symlink going into a tarball.
type entry struct {
	name string // slash-separated path inside the tarball
	src  string // file to read (regular files)
	mode fs.FileMode
	link string // symlink target
}

// collect lists root's tree as entries named prefix/<rel>, skipping paths for which skip returns true. Regular
// files keep only their executable bit (0755 or 0644), directories are 0755.
func collect(root, prefix string, skip func(rel string, d fs.DirEntry) bool) ([]entry, error) {
	var out []entry
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel != "." && skip != nil && skip(rel, d) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		name := path.Join(prefix, rel)
		if name == "." || name == "" {
			return nil
		}
		switch {
		case d.IsDir():
			out = append(out, entry{name: name, mode: fs.ModeDir | 0o755})
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out = append(out, entry{name: name, mode: fs.ModeSymlink | 0o777, link: target})
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			mode := fs.FileMode(0o644)
			if info.Mode()&0o111 != 0 {
				mode = 0o755
			}
			out = append(out, entry{name: name, src: p, mode: mode})
		}
		return nil
	})
	return out, err
}

// writeTarball writes entries, sorted by name, as a deterministic gzipped tar to dst (through a temporary file
// renamed into place) and returns its size and "sha256:<hex>" digest.
func writeTarball(dst string, entries []entry) (size int64, digest string, err error) {
	slices.SortFunc(entries, func(a, b entry) int {
		switch {
		case a.name < b.name:
			return -1
		case a.name > b.name:
			return 1
		}
		return 0
	})
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return 0, "", err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-")
	if err != nil {
		return 0, "", err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(tmp, h)}
	gz, err := gzip.NewWriterLevel(cw, gzip.DefaultCompression) // no name, zero mtime in the header
	if err != nil {
		return 0, "", err
	}
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		if err := writeEntry(tw, e); err != nil {
			return 0, "", fmt.Errorf("adding %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return 0, "", err
	}
	if err := gz.Close(); err != nil {
		return 0, "", err
	}
	if err := tmp.Close(); err != nil {
		return 0, "", err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return 0, "", err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return 0, "", err
	}
	return cw.n, "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

func writeEntry(tw *tar.Writer, e entry) error {
	hdr := &tar.Header{Name: e.name, ModTime: entryTime, Format: tar.FormatPAX, Mode: int64(e.mode.Perm())}
	switch {
	case e.mode.IsDir():
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
		return tw.WriteHeader(hdr)
	case e.mode&fs.ModeSymlink != 0:
		hdr.Typeflag = tar.TypeSymlink
		hdr.Linkname = e.link
		return tw.WriteHeader(hdr)
	}
	f, err := os.Open(e.src)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	hdr.Typeflag = tar.TypeReg
	hdr.Size = st.Size()
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	n, err := io.Copy(tw, f)
	if err != nil {
		return err
	}
	if n != st.Size() {
		return fmt.Errorf("file changed size while being archived")
	}
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// fileDigest returns a file's size and "sha256:<hex>" digest.
func fileDigest(p string) (int64, string, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", err
	}
	return n, "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

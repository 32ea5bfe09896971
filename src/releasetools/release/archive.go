package release

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"
)

// archiveTime is the modification time of every entry Build writes, so archives depend on content only.
var archiveTime = time.Unix(0, 0).UTC()

// tgzWriter writes a deterministic gzipped tar: "./"-prefixed names, fixed owner, mode and time, and each directory
// entry emitted once, just before the first entry below it. Callers add entries in sorted order.
type tgzWriter struct {
	gz   *gzip.Writer
	tw   *tar.Writer
	dirs map[string]bool
}

func newTgzWriter(w io.Writer) *tgzWriter {
	gz, _ := gzip.NewWriterLevel(w, gzip.DefaultCompression) // the header carries no name and a zero mtime
	t := &tgzWriter{gz: gz, tw: tar.NewWriter(gz), dirs: map[string]bool{}}
	return t
}

func (t *tgzWriter) ensureDir(dir string) error {
	if dir == "." || dir == "" || t.dirs[dir] {
		return nil
	}
	if err := t.ensureDir(path.Dir(dir)); err != nil {
		return err
	}
	t.dirs[dir] = true
	return t.tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeDir, Name: "./" + dir + "/", Mode: 0o755, ModTime: archiveTime, Format: tar.FormatPAX,
	})
}

// root writes the "./" entry that tar archives made from a directory start with.
func (t *tgzWriter) root() error {
	return t.tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeDir, Name: "./", Mode: 0o755, ModTime: archiveTime, Format: tar.FormatPAX,
	})
}

// addFile writes one regular file; name is slash-separated and relative.
func (t *tgzWriter) addFile(name string, mode int64, size int64, r io.Reader) error {
	name = strings.TrimPrefix(path.Clean(name), "./")
	if err := t.ensureDir(path.Dir(name)); err != nil {
		return err
	}
	if err := t.tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg, Name: "./" + name, Mode: mode, Size: size, ModTime: archiveTime, Format: tar.FormatPAX,
	}); err != nil {
		return err
	}
	n, err := io.Copy(t.tw, r)
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("%s changed while being archived", name)
	}
	return nil
}

// addPath writes the file at abs under name.
func (t *tgzWriter) addPath(name, abs string, mode int64) error {
	f, err := os.Open(abs)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	return t.addFile(name, mode, st.Size(), f)
}

func (t *tgzWriter) close() error {
	if err := t.tw.Close(); err != nil {
		return err
	}
	return t.gz.Close()
}

// archiveName normalizes a tar entry name: no leading "./" or "/", cleaned; "" for the root.
func archiveName(n string) string {
	n = path.Clean("/" + n)
	return strings.TrimPrefix(n, "/")
}

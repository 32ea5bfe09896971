package backup

import (
	"crypto/sha256"
	"hash"
	"os"

	"golang.org/x/sys/unix"
)

// writebackChunk is how much of a snapshot may be written but not yet on its way to the disk.
const writebackChunk = 8 << 20

// writebackFile writes a large file while keeping its dirty pages few: after every writebackChunk bytes it
// starts that chunk's writeback and waits for the chunk before it (sync_file_range, the pattern the Linux man
// page gives for streaming writes). Without that, the kernel gathers up to a GiB of dirty pages and the final
// fsync sends them in one burst, which stalls the fsyncs of the member's WAL behind it.
type writebackFile struct {
	f *os.File
	// n is the bytes written; flushed is where the last writeback started.
	n, flushed int64
}

func (w *writebackFile) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.n += int64(n)
	if err == nil && w.n-w.flushed >= writebackChunk {
		w.writeback()
	}
	return n, err
}

// writeback starts the writeback of [flushed, n) and waits for everything before flushed. Errors are left to
// the final fsync, which reports any write that failed.
func (w *writebackFile) writeback() {
	fd := int(w.f.Fd())
	if w.flushed > 0 {
		_ = unix.SyncFileRange(fd, 0, w.flushed, unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
	}
	_ = unix.SyncFileRange(fd, w.flushed, w.n-w.flushed, unix.SYNC_FILE_RANGE_WRITE)
	w.flushed = w.n
}

// trailerHasher hashes a snapshot stream in one pass: Body is the sha256 of everything but the last
// TrailerSize bytes (which it holds back in tail), what etcd's trailer must equal; SoFar is the sha256 of
// everything written, the file's.
type trailerHasher struct {
	h    hash.Hash
	tail []byte
}

func newTrailerHasher() *trailerHasher { return &trailerHasher{h: sha256.New()} }

func (w *trailerHasher) Write(p []byte) (int, error) {
	if len(p) >= TrailerSize {
		w.h.Write(w.tail)
		w.h.Write(p[:len(p)-TrailerSize])
		w.tail = append(w.tail[:0], p[len(p)-TrailerSize:]...)
		return len(p), nil
	}
	w.tail = append(w.tail, p...)
	if over := len(w.tail) - TrailerSize; over > 0 {
		w.h.Write(w.tail[:over])
		k := copy(w.tail, w.tail[over:])
		w.tail = w.tail[:k]
	}
	return len(p), nil
}

// Trailer is the last TrailerSize bytes written (fewer if less was written).
func (w *trailerHasher) Trailer() []byte { return w.tail }

// Body is the sha256 of everything written but the trailer.
func (w *trailerHasher) Body() []byte { return w.h.Sum(nil) }

// SoFar is the sha256 of everything written, trailer included; nil if the hash cannot be cloned (sha256's
// can).
func (w *trailerHasher) SoFar() []byte {
	c, ok := w.h.(hash.Cloner)
	if !ok {
		return nil
	}
	h, err := c.Clone()
	if err != nil {
		return nil
	}
	h.Write(w.tail)
	return h.Sum(nil)
}

package backup

import (
	"crypto/sha256"
	"hash"
	"runtime"

	"golang.org/x/sys/unix"
)

// lowPriority runs f on an OS thread of its own at nice 19, so that receiving, hashing and verifying a snapshot
// yields the CPU to the embedded etcd serving clients in the same process (Linux sets nice per thread). The
// thread is not returned to the Go runtime afterwards: f's goroutine ends still locked, so the thread exits.
func lowPriority(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), 19) // best effort: without it f runs at normal priority
		f()
	}()
	<-done
}

// trailerHasher hashes everything written to it except the last TrailerSize bytes, which it keeps: after a
// whole snapshot stream, Sum is the digest the trailer must equal (checked by CheckTrailer) without reading the
// file again.
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
		n := copy(w.tail, w.tail[over:])
		w.tail = w.tail[:n]
	}
	return len(p), nil
}

// Trailer is the last TrailerSize bytes written (fewer if less was written).
func (w *trailerHasher) Trailer() []byte { return w.tail }

// Sum is the sha256 of everything but the trailer.
func (w *trailerHasher) Sum() []byte { return w.h.Sum(nil) }

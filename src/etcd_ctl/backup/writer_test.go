package backup

import (
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// One pass of the trailer hasher gives the digest the trailer must equal and the file's sha256, however the
// stream is cut into writes; the writeback file holds exactly what it was given (the stream spans several
// writeback chunks).
func TestTrailerHasherAndWritebackFile(t *testing.T) {
	db := make([]byte, 3*writebackChunk+5000)
	for i := range db {
		db[i] = byte(i * 7)
	}
	sum := sha256.Sum256(db)
	stream := append(append([]byte(nil), db...), sum[:]...)
	whole := sha256.Sum256(stream)
	for _, chunk := range []int{7, 31, 32, 33, 4096, 1 << 20, len(stream)} {
		f, err := os.Create(filepath.Join(t.TempDir(), "snap"))
		require.NoError(t, err)
		th := newTrailerHasher()
		w := io.MultiWriter(&writebackFile{f: f}, th)
		for off := 0; off < len(stream); off += chunk {
			_, err := w.Write(stream[off:min(off+chunk, len(stream))])
			require.NoError(t, err)
		}
		require.Equal(t, sum[:], th.Body(), "chunk %d: the hash of everything before the trailer", chunk)
		require.Equal(t, sum[:], th.Trailer(), "chunk %d", chunk)
		require.Equal(t, whole[:], th.SoFar(), "chunk %d: the file's sha256", chunk)
		require.NoError(t, f.Close())
		got, err := os.ReadFile(f.Name())
		require.NoError(t, err)
		require.True(t, string(stream) == string(got), "chunk %d: the file holds the stream", chunk)
	}
}

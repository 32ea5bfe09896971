package backup

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func testKey(t *testing.T, id string) Key {
	k := Key{ID: id, Key: make([]byte, 32)}
	_, err := rand.Read(k.Key)
	require.NoError(t, err)
	return k
}

func TestEncryptDecryptRoundTripAndTampering(t *testing.T) {
	k1, k2 := testKey(t, "2026-01"), testKey(t, "2026-07")
	for _, size := range []int{0, 1, encChunkSize - 1, encChunkSize, encChunkSize + 1, 3 * encChunkSize, 3*encChunkSize + 17} {
		plain := make([]byte, size)
		_, _ = rand.Read(plain)
		var sealed bytes.Buffer
		require.NoError(t, Encrypt(&sealed, bytes.NewReader(plain), k1))
		id, err := KeyIDOf(bytes.NewReader(sealed.Bytes()))
		require.NoError(t, err)
		require.Equal(t, "2026-01", id)

		var out bytes.Buffer
		id, err = Decrypt(&out, bytes.NewReader(sealed.Bytes()), []Key{k2, k1}) // rotation: any listed key
		require.NoError(t, err, "size %d", size)
		require.Equal(t, "2026-01", id)
		require.True(t, bytes.Equal(plain, out.Bytes()), "size %d", size)

		s := sealed.Bytes()
		hdr := len(encMagic) + 1 + len(k1.ID) + encPrefixLen
		chunk := encChunkSize + 16
		bad := map[string][]byte{
			"no key":             nil,
			"a flipped bit":      flip(s, len(s)-1),
			"a flipped header":   flip(s, hdr-1),
			"cut by one byte":    s[:len(s)-1],
			"only the header":    s[:hdr],
			"cut after a chunk":  s[:min(len(s), hdr+chunk)],
			"a chunk appended":   append(append([]byte(nil), s...), s[hdr:min(len(s), hdr+chunk)]...),
			"wrong key, same ID": nil,
		}
		for name, b := range bad {
			keys := []Key{k1}
			switch name {
			case "no key":
				b, keys = s, []Key{k2}
			case "wrong key, same ID":
				b, keys = s, []Key{{ID: k1.ID, Key: k2.Key}}
			}
			if name == "cut after a chunk" && len(b) == len(s) {
				continue // a file of one chunk: cutting after it is the whole file
			}
			_, err := Decrypt(&bytes.Buffer{}, bytes.NewReader(b), keys)
			require.Error(t, err, "size %d: %s", size, name)
		}
	}
	_, err := Decrypt(&bytes.Buffer{}, bytes.NewReader([]byte("SQLite format 3\x00")), []Key{k1})
	require.ErrorContains(t, err, "not an encrypted snapshot")
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0x01
	return c
}

func TestEncryptedSnapshotIsRefusedBeforeAnyByteIsRestored(t *testing.T) {
	cli, ep := startEtcd(t)
	rev := put(t, cli, 300)
	dir := t.TempDir()
	k := testKey(t, "k1")
	m, err := Take(context.Background(), cli, ep, Options{Dir: dir, Gzip: true, KeepCount: 5, Key: &k})
	require.NoError(t, err)
	require.True(t, m.Encrypted)
	require.Equal(t, "k1", m.KeyID)
	require.Contains(t, m.File, ".db.gz.enc")
	b, err := os.ReadFile(m.Path())
	require.NoError(t, err)
	require.NotContains(t, string(b), "value-1", "no plaintext in the file")

	scratch := t.TempDir()
	raw, st, cleanup, err := Open(m.Path(), scratch, []Key{testKey(t, "k2"), k})
	require.NoError(t, err)
	require.GreaterOrEqual(t, st.Revision, rev)
	require.FileExists(t, raw)
	cleanup()
	left, _ := os.ReadDir(scratch)
	require.Empty(t, left)

	_, _, _, err = Open(m.Path(), scratch, nil)
	require.ErrorIs(t, err, ErrNoKey)
	require.ErrorContains(t, err, `encrypted with key "k1"`)

	// Without metadata (so its sha256 cannot catch it), a tampered or cut file fails authentication.
	for name, bad := range map[string][]byte{"tampered": flip(b, len(b)/2), "truncated": b[:len(b)-100]} {
		p := filepath.Join(t.TempDir(), filepath.Base(m.Path()))
		require.NoError(t, os.WriteFile(p, bad, 0o600))
		_, _, _, err = Open(p, scratch, []Key{k})
		require.ErrorContains(t, err, "does not authenticate", name)
		require.ErrorContains(t, err, "nothing was restored", name)
		left, _ := os.ReadDir(scratch)
		require.Empty(t, left, "%s: no decrypted bytes left behind", name)
	}
}

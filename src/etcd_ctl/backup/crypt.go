package backup

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Encrypted snapshot files (etcd.backup.encryption_keys) are a header followed by the snapshot file cut into
// 64 KiB chunks, each sealed with AES-256-GCM: the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár,
// "Online authenticated-encryption and its nonce-reuse misuse-resistance"). A chunk's nonce is the header's random
// 7-byte prefix, the chunk's 4-byte counter and a byte that is 1 only on the last chunk; the header is every
// chunk's additional data. So a changed, reordered, dropped or appended chunk, a file cut at any point (even at a
// chunk boundary), or a changed header fails to open; Decrypt reads the whole file before the restore uses any
// of it.
const (
	encMagic     = "ERSNAPv1"
	encChunkSize = 64 << 10
	encPrefixLen = 7
)

// ErrNoKey means the file was encrypted with a key ID the configuration does not hold.
var ErrNoKey = errors.New("no key with that ID in etcd.backup.encryption_keys")

// Key is one entry of etcd.backup.encryption_keys, decoded.
type Key struct {
	ID  string
	Key []byte // 32 bytes
}

func header(keyID string, prefix []byte) []byte {
	h := append([]byte(encMagic), byte(len(keyID)))
	h = append(h, keyID...)
	return append(h, prefix...)
}

func chunkNonce(prefix []byte, counter uint32, last bool) []byte {
	n := make([]byte, 12)
	copy(n, prefix)
	binary.BigEndian.PutUint32(n[encPrefixLen:], counter)
	if last {
		n[11] = 1
	}
	return n
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("the key is %d bytes; AES-256 needs 32", len(key))
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// Encrypt writes r to w sealed with k.
func Encrypt(w io.Writer, r io.Reader, k Key) error {
	if len(k.ID) == 0 || len(k.ID) > 255 {
		return fmt.Errorf("key ID %q must have 1 to 255 bytes", k.ID)
	}
	aead, err := newAEAD(k.Key)
	if err != nil {
		return err
	}
	prefix := make([]byte, encPrefixLen)
	if _, err := rand.Read(prefix); err != nil {
		return err
	}
	hdr := header(k.ID, prefix)
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	buf, next := make([]byte, encChunkSize), make([]byte, encChunkSize)
	n, err := io.ReadFull(r, buf)
	for counter := uint32(0); ; counter++ {
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			return err
		}
		// Read ahead one chunk to know whether this one is the last.
		m, nerr := 0, io.EOF
		if err == nil {
			m, nerr = io.ReadFull(r, next)
		}
		last := m == 0 && (nerr == io.EOF || nerr == io.ErrUnexpectedEOF || err != nil)
		if _, werr := w.Write(aead.Seal(nil, chunkNonce(prefix, counter, last), buf[:n], hdr)); werr != nil {
			return werr
		}
		if last {
			return nil
		}
		if counter == ^uint32(0) {
			return errors.New("snapshot too large to encrypt (2^32 chunks)")
		}
		buf, next, n, err = next, buf, m, nerr
	}
}

// KeyIDOf reads an encrypted file's key ID from its header.
func KeyIDOf(r io.Reader) (string, error) {
	id, _, _, err := readHeader(r)
	return id, err
}

func readHeader(r io.Reader) (id string, prefix, hdr []byte, err error) {
	fixed := make([]byte, len(encMagic)+1)
	if _, err := io.ReadFull(r, fixed); err != nil {
		return "", nil, nil, fmt.Errorf("not an encrypted snapshot (header too short): %w", err)
	}
	if !bytes.Equal(fixed[:len(encMagic)], []byte(encMagic)) {
		return "", nil, nil, errors.New("not an encrypted snapshot (no ERSNAPv1 header)")
	}
	rest := make([]byte, int(fixed[len(encMagic)])+encPrefixLen)
	if _, err := io.ReadFull(r, rest); err != nil {
		return "", nil, nil, fmt.Errorf("encrypted snapshot header truncated: %w", err)
	}
	id = string(rest[:len(rest)-encPrefixLen])
	return id, rest[len(rest)-encPrefixLen:], append(fixed, rest...), nil
}

// Decrypt opens r with the key its header names (from keys) and writes the plaintext to w. Any tampering or
// truncation is an error; callers write to a temporary file and use it only if Decrypt returned nil.
func Decrypt(w io.Writer, r io.Reader, keys []Key) (keyID string, err error) {
	id, prefix, hdr, err := readHeader(r)
	if err != nil {
		return "", err
	}
	var key []byte
	for _, k := range keys {
		if k.ID == id {
			key = k.Key
		}
	}
	if key == nil {
		return id, fmt.Errorf("the snapshot was encrypted with key %q: %w (add it, with its key, to decrypt)", id, ErrNoKey)
	}
	aead, err := newAEAD(key)
	if err != nil {
		return id, err
	}
	sealed, next := make([]byte, encChunkSize+aead.Overhead()), make([]byte, encChunkSize+aead.Overhead())
	n, rerr := io.ReadFull(r, sealed)
	for counter := uint32(0); ; counter++ {
		if rerr != nil && rerr != io.EOF && rerr != io.ErrUnexpectedEOF {
			return id, rerr
		}
		m, nerr := 0, io.EOF
		if rerr == nil {
			m, nerr = io.ReadFull(r, next)
		}
		last := m == 0
		plain, err := aead.Open(nil, chunkNonce(prefix, counter, last), sealed[:n], hdr)
		if err != nil {
			return id, fmt.Errorf("chunk %d does not authenticate with key %q: the file was modified, truncated or reordered", counter, id)
		}
		if _, err := w.Write(plain); err != nil {
			return id, err
		}
		if last {
			return id, nil
		}
		sealed, next, n, rerr = next, sealed, m, nerr
	}
}

package membership

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/atomicfile"
)

// OwnPrefix is the key prefix etcd_ctl writes under (membership lock, cluster record). Any key outside it is a
// client write: data the deployment's users put there.
const OwnPrefix = "/etcd-release/"

// ClusterKey holds the ClusterRecord the creator of a cluster writes once the cluster is up.
const ClusterKey = OwnPrefix + "cluster"

// ClusterRecord identifies one creation of a cluster.
type ClusterRecord struct {
	// Nonce is random per creation and part of the initial cluster token, so that a re-created cluster never
	// gets the cluster ID of the one it replaces: etcd hashes the initial members' peer URLs and the token into
	// their member IDs (computeMemberID in etcd's server/etcdserver/api/membership/member.go) and the member IDs
	// into the cluster ID (RaftCluster.genID in cluster.go there).
	Nonce     string    `json:"creation_nonce"`
	Token     string    `json:"initial_cluster_token"`
	Creator   string    `json:"creator"`
	CreatedAt time.Time `json:"created_at"`
}

// NewNonce returns a random creation nonce.
func NewNonce() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// TokenWithNonce is the initial cluster token of one creation: the deployment's token and the nonce.
func TokenWithNonce(token, nonce string) string { return token + "-" + nonce }

// identityRecord is the identity file with the creation nonce of the member's cluster. The nonce is kept in a
// wrapper so that identity files of earlier releases (no nonce) read as they are.
type identityRecord struct {
	Identity
	CreationNonce string `json:"creation_nonce,omitempty"`
}

// ReadCreationNonce returns the creation nonce recorded in the identity file ("" if none).
func ReadCreationNonce(dataDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, identityFile))
	if os.IsNotExist(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading member identity: %w", err)
	}
	var r identityRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return "", fmt.Errorf("%s: %w", filepath.Join(dataDir, identityFile), err)
	}
	return r.CreationNonce, nil
}

// WriteIdentityWithNonce records id and the creation nonce atomically in the identity file.
func WriteIdentityWithNonce(dataDir string, id Identity, nonce string) error {
	if nonce == "" {
		return WriteIdentity(dataDir, id)
	}
	b, _ := json.MarshalIndent(identityRecord{Identity: id, CreationNonce: nonce}, "", "  ")
	if err := atomicfile.Write(filepath.Join(dataDir, identityFile), b, 0o600); err != nil {
		return fmt.Errorf("writing member identity: %w", err)
	}
	return nil
}

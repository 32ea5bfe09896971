package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const key32 = Secret("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=") // 32 bytes

func TestValidateBackupProperties(t *testing.T) {
	for name, tc := range map[string]struct {
		edit func(*Config)
		want string // "" = valid
	}{
		"defaults":              {func(c *Config) {}, ""},
		"off":                   {func(c *Config) { c.Etcd.Backup.IntervalInMinutes = 0 }, ""},
		"negative interval":     {func(c *Config) { c.Etcd.Backup.IntervalInMinutes = -5 }, "etcd.backup.interval_in_minutes: got -5"},
		"keep nothing":          {func(c *Config) { c.Etcd.Backup.KeepCount = 0 }, "etcd.backup.keep_count: got 0, must be at least 1"},
		"negative days":         {func(c *Config) { c.Etcd.Backup.KeepDays = -1 }, "etcd.backup.keep_days: got -1"},
		"relative dir":          {func(c *Config) { c.Etcd.Backup.Dir = "backups" }, `etcd.backup.dir: got "backups", must be an absolute path`},
		"inside the wiped dir":  {func(c *Config) { c.Etcd.Backup.Dir = "/var/vcap/store/etcd/snaps" }, "inside the data dir /var/vcap/store/etcd, which the documented wipe"},
		"the data dir itself":   {func(c *Config) { c.Etcd.Backup.Dir = "/var/vcap/store/etcd/" }, "inside the data dir"},
		"sibling with a prefix": {func(c *Config) { c.Etcd.Backup.Dir = "/var/vcap/store/etcd2" }, ""},
		"a key":                 {func(c *Config) { c.Etcd.Backup.EncryptionKeys = []BackupKey{{ID: "k1", Key: key32}} }, ""},
		"two keys (rotation)": {func(c *Config) {
			c.Etcd.Backup.EncryptionKeys = []BackupKey{{ID: "k2", Key: key32}, {ID: "k1", Key: key32}}
		}, ""},
		"a short key": {func(c *Config) { c.Etcd.Backup.EncryptionKeys = []BackupKey{{ID: "k1", Key: "c2hvcnQ="}} }, "etcd.backup.encryption_keys[0].key: must be 32 random bytes in base64"},
		"not base64":  {func(c *Config) { c.Etcd.Backup.EncryptionKeys = []BackupKey{{ID: "k1", Key: "-----BEGIN"}} }, "etcd.backup.encryption_keys[0].key"},
		"no id":       {func(c *Config) { c.Etcd.Backup.EncryptionKeys = []BackupKey{{Key: key32}} }, `etcd.backup.encryption_keys[0].id: got ""`},
		"duplicate id": {func(c *Config) {
			c.Etcd.Backup.EncryptionKeys = []BackupKey{{ID: "k", Key: key32}, {ID: "k", Key: key32}}
		}, `etcd.backup.encryption_keys[1].id: got "k", must be a unique name`},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := Parse([]byte(minimal))
			require.NoError(t, err)
			tc.edit(c)
			_, err = c.Validate(time.Now())
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestBackupDirDefaultsToTheDataDirsSibling(t *testing.T) {
	c := Default()
	require.Equal(t, "/var/vcap/store/etcd-backups", c.BackupDir())
	c.Etcd.Backup.Dir = "/data/snaps"
	require.Equal(t, "/data/snaps", c.BackupDir())
}

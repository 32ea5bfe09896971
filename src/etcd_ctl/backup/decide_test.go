package backup

import (
	"crypto/sha256"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCheckTrailer(t *testing.T) {
	db := make([]byte, 4096)
	db[7] = 1
	sum := sha256.Sum256(db)
	other := sha256.Sum256([]byte("x"))
	for name, tc := range map[string]struct {
		size            int64
		trailer, digest []byte
		want            string // "" = intact
	}{
		"intact":                {4096 + 32, sum[:], sum[:], ""},
		"truncated by a byte":   {4096 + 31, sum[:31], sum[:], "is not a database followed by etcd's 32-byte sha256 trailer"},
		"a copied db file":      {4096, nil, nil, "is not a database followed by etcd's 32-byte sha256 trailer"},
		"one bit flipped":       {4096 + 32, sum[:], other[:], "does not match the sha256 of the database"},
		"truncated to a sector": {512 + 32, sum[:], other[:], "does not match"},
	} {
		t.Run(name, func(t *testing.T) {
			err := CheckTrailer(tc.size, tc.trailer, tc.digest)
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestDue(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	at := func(ago time.Duration) *Last { return &Last{Time: now.Add(-ago), Member: "etcd-1"} }
	for name, tc := range map[string]struct {
		last     *Last
		interval time.Duration
		due      bool
		reason   string
	}{
		"off":                  {nil, 0, false, "off"},
		"off with an old one":  {at(48 * time.Hour), 0, false, "off"},
		"never taken":          {nil, time.Hour, true, "no record"},
		"just taken":           {at(time.Minute), time.Hour, false, "1m0s old, the interval is 1h0m0s"},
		"exactly one interval": {at(time.Hour), time.Hour, true, "1h0m0s old"},
		"overdue":              {at(5 * time.Hour), time.Hour, true, "5h0m0s old"},
		"slightly ahead clock": {at(-30 * time.Second), time.Hour, false, "old"},
		"far ahead clock":      {at(-2 * time.Hour), time.Hour, true, "in the future"},
	} {
		t.Run(name, func(t *testing.T) {
			due, reason := Due(now, tc.last, tc.interval)
			require.Equal(t, tc.due, due, reason)
			require.Contains(t, reason, tc.reason)
		})
	}
}

func TestPrune(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	snap := func(name string, ago time.Duration) Meta { return Meta{File: name, Time: now.Add(-ago)} }
	// Listed out of order on purpose: Prune sorts by time.
	all := []Meta{snap("c", 2*time.Hour), snap("a", 0), snap("e", 10*24*time.Hour), snap("b", time.Hour), snap("d", 3*24*time.Hour)}
	for name, tc := range map[string]struct {
		in        []Meta
		count     int
		days      int
		wantFiles []string
	}{
		"nothing to prune":        {all, 10, 0, nil},
		"by count":                {all, 2, 0, []string{"c", "d", "e"}},
		"by age":                  {all, 10, 2, []string{"d", "e"}},
		"by count and age":        {all, 4, 2, []string{"d", "e"}},
		"count 1 keeps newest":    {all, 1, 0, []string{"b", "c", "d", "e"}},
		"the newest survives age": {[]Meta{snap("old", 30*24*time.Hour), snap("older", 40*24*time.Hour)}, 5, 7, []string{"older"}},
		"empty":                   {nil, 3, 3, nil},
	} {
		t.Run(name, func(t *testing.T) {
			var got []string
			for _, m := range Prune(tc.in, now, tc.count, tc.days) {
				got = append(got, m.File)
			}
			require.Equal(t, tc.wantFiles, got)
		})
	}
}

func TestFileNameSortsByTime(t *testing.T) {
	a := FileName(time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC), 42, false)
	b := FileName(time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC), 7, true)
	require.Equal(t, "etcd-snapshot-20260102T030405.006Z-rev42.db", a)
	require.Equal(t, "etcd-snapshot-20260102T030406.000Z-rev7.db.gz", b)
	require.Less(t, a, b)
}

func TestStaleParts(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	old, fresh := now.Add(-StalePartAge-time.Minute), now.Add(-time.Hour)
	for _, tc := range []struct {
		name     string
		modified map[string]time.Time
		want     []string
	}{
		{"nothing", map[string]time.Time{}, nil},
		{"an old part of each kind", map[string]time.Time{".etcd-snapshot-1.part": old, ".etcd-snapshot-2.gz.part": old, ".etcd-snapshot-3.enc.part": old},
			[]string{".etcd-snapshot-1.part", ".etcd-snapshot-2.gz.part", ".etcd-snapshot-3.enc.part"}},
		{"a part being written is kept", map[string]time.Time{".etcd-snapshot-1.part": fresh}, nil},
		{"snapshots and their metadata are never parts", map[string]time.Time{"etcd-snapshot-20260101T000000.000Z-rev5.db": old, "etcd-snapshot-20260101T000000.000Z-rev5.db.json": old}, nil},
		{"other files are not ours", map[string]time.Time{"notes.part": old, ".etcd-snapshot-1.partial": old}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, StaleParts(tc.modified, now))
		})
	}
}

package linearizability

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func at(ms int) time.Time { return time.Unix(0, 0).Add(time.Duration(ms) * time.Millisecond) }

func put(client int, key, value string, call, ret int, done bool) Op {
	return Op{Client: client, Key: key, Put: true, Value: value, Call: at(call), Return: at(ret), Done: done}
}

func get(client int, key, value string, call, ret int) Op {
	return Op{Client: client, Key: key, Value: value, Call: at(call), Return: at(ret), Done: true}
}

func TestCheckVerdicts(t *testing.T) {
	for name, tc := range map[string]struct {
		ops  []Op
		want Verdict
	}{
		"sequential put then get": {[]Op{put(0, "a", "1", 0, 10, true), get(1, "a", "1", 20, 30)}, Linearizable},
		"get of an absent key":    {[]Op{get(1, "a", "", 0, 10), put(0, "a", "1", 20, 30, true)}, Linearizable},
		"get concurrent with the put sees it": {[]Op{
			put(0, "a", "1", 0, 10, true), get(1, "a", "1", 5, 15), get(1, "a", "1", 20, 25),
		}, Linearizable},
		"concurrent puts, gets see either order": {[]Op{
			put(0, "a", "1", 0, 10, true), put(1, "a", "2", 5, 50, true), get(2, "a", "1", 20, 30), get(2, "a", "2", 60, 70),
		}, Linearizable},
		"failed put that took effect much later": {[]Op{
			put(0, "a", "1", 0, 10, false), get(1, "a", "", 20, 30), get(1, "a", "1", 100, 110),
		}, Linearizable},
		"failed get is ignored": {[]Op{
			put(0, "a", "1", 0, 10, true), {Client: 1, Key: "a", Value: "", Call: at(20), Return: at(30)},
		}, Linearizable},
		"keys are independent": {[]Op{
			put(0, "a", "1", 0, 10, true), put(0, "b", "2", 20, 30, true), get(1, "a", "1", 40, 50), get(1, "b", "2", 40, 50),
		}, Linearizable},
		"acknowledged write lost": {[]Op{put(0, "a", "1", 0, 10, true), get(1, "a", "", 20, 30)}, NotLinearizable},
		"stale read after a newer acknowledged write": {[]Op{
			put(0, "a", "1", 0, 10, true), put(0, "a", "2", 20, 30, true), get(1, "a", "1", 40, 50),
		}, NotLinearizable},
		"stale read after a newer write was read": {[]Op{
			put(0, "a", "1", 0, 10, true), put(0, "a", "2", 20, 30, true), get(1, "a", "2", 40, 50), get(2, "a", "1", 60, 70),
		}, NotLinearizable},
		"value never written": {[]Op{put(0, "a", "1", 0, 10, true), get(1, "a", "9", 20, 30)}, NotLinearizable},
		"one bad key fails the history": {[]Op{
			put(0, "a", "1", 0, 10, true), get(1, "a", "1", 20, 30), put(0, "b", "1", 0, 10, true), get(1, "b", "", 20, 30),
		}, NotLinearizable},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := Check(tc.ops, 10*time.Second, "")
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestCheckWritesAVisualizationOfAViolation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "viz.html")
	got, err := Check([]Op{put(0, "a", "1", 0, 10, true), get(1, "a", "", 20, 30)}, 10*time.Second, path)
	require.NoError(t, err)
	require.Equal(t, NotLinearizable, got)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Contains(t, string(b), "<html")
}

package consumer

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func put(client int, key, value string, call, ret int, ok bool) Op {
	return Op{Client: client, Kind: Put, Key: key, Value: value, Call: at(call), Return: at(ret), OK: ok}
}

func get(client int, key, value string, call, ret int) Op {
	return Op{Client: client, Kind: Get, Key: key, Value: value, Call: at(call), Return: at(ret), OK: true}
}

func TestCheckVerdicts(t *testing.T) {
	for name, tc := range map[string]struct {
		ops  []Op
		want Verdict
	}{
		"sequential put then get": {[]Op{put(0, "a", "1", 0, 10, true), get(1, "a", "1", 20, 30)}, Linearizable},
		"get of an absent key":    {[]Op{get(1, "a", "", 0, 10), put(0, "a", "1", 20, 30, true)}, Linearizable},
		"concurrent put, get sees either": {[]Op{
			put(0, "a", "1", 0, 10, true), put(1, "a", "2", 5, 50, true), get(2, "a", "1", 20, 30), get(2, "a", "2", 60, 70),
		}, Linearizable},
		"failed put that took effect later": {[]Op{
			put(0, "a", "1", 0, 10, false), get(1, "a", "", 20, 30), get(1, "a", "1", 40, 50),
		}, Linearizable},
		"failed get is ignored": {[]Op{
			put(0, "a", "1", 0, 10, true), {Client: 1, Kind: Get, Key: "a", Value: "", Call: at(20), Return: at(30), OK: false},
		}, Linearizable},
		"keys are independent": {[]Op{
			put(0, "a", "1", 0, 10, true), put(0, "b", "2", 20, 30, true), get(1, "a", "1", 40, 50), get(1, "b", "2", 40, 50),
		}, Linearizable},
		"acknowledged write lost": {[]Op{put(0, "a", "1", 0, 10, true), get(1, "a", "", 20, 30)}, NotLinearizable},
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

func TestStatsCountsAndLongestStall(t *testing.T) {
	c := &Consumer{history: &History{}, started: at(0), stopped: at(1000)}
	for _, op := range []Op{
		put(0, "w/1", "1", 0, 100, true),
		put(0, "w/2", "2", 100, 700, false),
		put(0, "w/3", "3", 700, 800, true),
		get(1, "r/1", "", 100, 150),
		{Client: 1, Kind: Get, Key: "r/1", Call: at(200), Return: at(300), Err: "timeout"},
		{Client: 9, Kind: Put, Key: "w/9", Call: at(0), Return: at(10), OK: true, Endpoint: "probe"},
	} {
		c.history.Add(op)
	}
	s := c.Stats()
	require.Equal(t, 2, s.WritesAcked)
	require.Equal(t, 1, s.WritesFailed)
	require.Equal(t, 1, s.ReadsOK)
	require.Equal(t, 1, s.ReadsFailed)
	require.Equal(t, 700*time.Millisecond, s.LongestStall, "from the ack at 100 ms to the next at 800 ms")
	require.Equal(t, at(100), s.LongestStallAt)
	require.Equal(t, 100*time.Millisecond, s.MaxLatency)
	require.Equal(t, map[string]int{"": 1, "timeout": 1}, s.Errors)
}

package consumer

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcd-release/etcd-release/src/testkit/linearizability"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func put(client int, key, value string, call, ret int, ok bool) Op {
	return Op{Client: client, Kind: Put, Key: key, Value: value, Call: at(call), Return: at(ret), OK: ok}
}

func get(client int, key, value string, call, ret int) Op {
	return Op{Client: client, Kind: Get, Key: key, Value: value, Call: at(call), Return: at(ret), OK: true}
}

// The register model itself is tested in src/testkit/linearizability; this checks how a consumer's ops reach it:
// kind and acknowledgement carry over, and the read-back's and probes' ops count like any other.
func TestCheckReadsTheConsumersHistory(t *testing.T) {
	for name, tc := range map[string]struct {
		ops  []Op
		want linearizability.Verdict
	}{
		"acknowledged put then read back": {[]Op{put(0, "a", "1", 0, 10, true),
			{Client: 1, Kind: Get, Key: "a", Value: "1", Call: at(20), Return: at(30), OK: true, Endpoint: "read-back"}}, linearizability.Linearizable},
		"acknowledged put lost": {[]Op{put(0, "a", "1", 0, 10, true), get(1, "a", "", 20, 30)}, linearizability.NotLinearizable},
		"failed put seen later": {[]Op{put(0, "a", "1", 0, 10, false), get(1, "a", "1", 40, 50)}, linearizability.Linearizable},
		"failed get tells nothing": {[]Op{put(0, "a", "1", 0, 10, true),
			{Client: 1, Kind: Get, Key: "a", Call: at(20), Return: at(30), Err: "timeout"}}, linearizability.Linearizable},
		"a get is not a put": {[]Op{get(0, "a", "1", 0, 10)}, linearizability.NotLinearizable},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := Check(tc.ops, 10*time.Second, "")
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
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

package linearizability

import (
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/require"
)

func at(ms int) time.Time { return time.Unix(0, 0).Add(time.Duration(ms) * time.Millisecond) }

func TestCheckerAcceptsLinearizableHistory(t *testing.T) {
	ops := []Op{
		{Client: 0, Key: "a", Put: true, Value: "1", Call: at(0), Return: at(10), Done: true},
		{Client: 1, Key: "a", Value: "1", Call: at(5), Return: at(15), Done: true}, // concurrent with the put
		{Client: 1, Key: "a", Value: "1", Call: at(20), Return: at(25), Done: true},
		{Client: 0, Key: "b", Value: "", Call: at(0), Return: at(3), Done: true}, // absent key
		// An unknown write may apply later: a read seeing it long after is fine.
		{Client: 2, Key: "a", Put: true, Value: "2", Call: at(30), Return: at(31), Done: false},
		{Client: 1, Key: "a", Value: "2", Call: at(100), Return: at(110), Done: true},
	}
	require.Equal(t, porcupine.Ok, Check(ops, 5*time.Second))
}

func TestCheckerRejectsStaleRead(t *testing.T) {
	ops := []Op{
		{Client: 0, Key: "a", Put: true, Value: "1", Call: at(0), Return: at(10), Done: true},
		{Client: 0, Key: "a", Put: true, Value: "2", Call: at(20), Return: at(30), Done: true},
		{Client: 1, Key: "a", Value: "1", Call: at(40), Return: at(50), Done: true}, // stale: 2 was acknowledged before
	}
	require.Equal(t, porcupine.Illegal, Check(ops, 5*time.Second))
}

func TestCheckerRejectsLostAcknowledgedWrite(t *testing.T) {
	ops := []Op{
		{Client: 0, Key: "a", Put: true, Value: "1", Call: at(0), Return: at(10), Done: true},
		{Client: 1, Key: "a", Value: "", Call: at(20), Return: at(30), Done: true},
	}
	require.Equal(t, porcupine.Illegal, Check(ops, 5*time.Second))
}

package consumer

import (
	"time"

	"github.com/etcd-release/etcd-release/src/testkit/linearizability"
)

// Kind of an operation.
type Kind int

const (
	// Put writes Value to Key.
	Put Kind = iota
	// Get is a linearizable read of Key; Value is what it returned ("" when the key was absent).
	Get
)

// Op is one recorded client operation.
type Op struct {
	Client int
	Kind   Kind
	Key    string
	Value  string
	Call   time.Time
	Return time.Time
	// OK is true when the operation was acknowledged. A failed put may or may not have taken effect; a failed
	// get tells nothing.
	OK bool
	// Endpoint the operation was sent to ("" for the multi-endpoint client).
	Endpoint string
	Err      string
}

// history is ops as the shared linearizability checker records them.
func history(ops []Op) []linearizability.Op {
	out := make([]linearizability.Op, len(ops))
	for i, op := range ops {
		out[i] = linearizability.Op{Client: op.Client, Key: op.Key, Put: op.Kind == Put, Value: op.Value,
			Call: op.Call, Return: op.Return, Done: op.OK}
	}
	return out
}

// Check checks ops against the single-key register model of src/testkit/linearizability within timeout. When
// the history is not linearizable and vizPath is not empty, porcupine's visualization is written there.
func Check(ops []Op, timeout time.Duration, vizPath string) (linearizability.Verdict, error) {
	return linearizability.Check(history(ops), timeout, vizPath)
}

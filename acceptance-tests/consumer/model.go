package consumer

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"
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

type modelInput struct {
	put   bool
	value string
}

// RegisterModel is a single-key register per key: every key is its own partition, whose state is the key's
// value ("" = absent). A put sets it; a get must return it.
var RegisterModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Metadata.(string)
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, in, out any) (bool, any) {
		i := in.(modelInput)
		if i.put {
			return true, i.value
		}
		return out.(string) == state.(string), state
	},
	Equal: func(a, b any) bool { return a.(string) == b.(string) },
	DescribeOperation: func(in, out any) string {
		i := in.(modelInput)
		if i.put {
			return fmt.Sprintf("put(%q)", i.value)
		}
		return fmt.Sprintf("get() -> %q", out.(string))
	},
	DescribeState: func(s any) string { return fmt.Sprintf("%q", s.(string)) },
}

// Operations turns recorded ops into porcupine operations: a failed get is dropped (it constrains nothing), a
// failed put may take effect at any time after its call (its return is infinitely late).
func Operations(ops []Op) []porcupine.Operation {
	if len(ops) == 0 {
		return nil
	}
	origin := ops[0].Call
	for _, op := range ops {
		if op.Call.Before(origin) {
			origin = op.Call
		}
	}
	out := make([]porcupine.Operation, 0, len(ops))
	for _, op := range ops {
		if !op.OK && op.Kind == Get {
			continue
		}
		ret := op.Return.Sub(origin).Nanoseconds()
		if !op.OK {
			ret = math.MaxInt64
		}
		out = append(out, porcupine.Operation{ClientId: op.Client, Input: modelInput{put: op.Kind == Put, value: op.Value},
			Output: op.Value, Call: op.Call.Sub(origin).Nanoseconds(), Return: ret, Metadata: op.Key})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Call < out[j].Call })
	return out
}

// Verdict of a linearizability check.
type Verdict string

const (
	Linearizable    Verdict = "linearizable"
	NotLinearizable Verdict = "NOT linearizable"
	Unknown         Verdict = "unknown (checker timed out)"
)

// Check checks ops against RegisterModel within timeout. When the history is not linearizable and vizPath is
// not empty, porcupine's visualization is written there.
func Check(ops []Op, timeout time.Duration, vizPath string) (Verdict, error) {
	res, info := porcupine.CheckOperationsVerbose(RegisterModel, Operations(ops), timeout)
	switch res {
	case porcupine.Ok:
		return Linearizable, nil
	case porcupine.Unknown:
		return Unknown, nil
	}
	if vizPath != "" {
		if err := porcupine.VisualizePath(RegisterModel, info, vizPath); err != nil {
			return NotLinearizable, err
		}
	}
	return NotLinearizable, nil
}

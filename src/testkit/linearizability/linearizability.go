// Package linearizability records what clients did to an etcd cluster (every put and get, with invocation and
// completion times) and checks the history against a single-key register model with porcupine. A write whose
// outcome is unknown (error or timeout) may have taken effect at any time after it was invoked; a failed read
// tells nothing and is dropped. Error counts are not the verdict: linearizability is. The integration tests and
// the acceptance suite's consumer both check their histories here, so there is one model to trust.
package linearizability

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Op is one recorded operation.
type Op struct {
	Client int
	Key    string
	Put    bool
	Value  string // written value, or the value read ("" when the key was absent)
	Call   time.Time
	Return time.Time
	// Done is false when the outcome is unknown (the call failed).
	Done bool
}

// Recorder collects operations from concurrent clients.
type Recorder struct {
	mu  sync.Mutex
	ops []Op
}

// Put writes value to key through cli and records it.
func (r *Recorder) Put(ctx context.Context, cli *clientv3.Client, client int, key, value string) error {
	op := Op{Client: client, Key: key, Put: true, Value: value, Call: time.Now()}
	_, err := cli.Put(ctx, key, value)
	op.Return, op.Done = time.Now(), err == nil
	r.add(op)
	return err
}

// Get reads key through cli (linearizable read) and records it.
func (r *Recorder) Get(ctx context.Context, cli *clientv3.Client, client int, key string) error {
	op := Op{Client: client, Key: key, Call: time.Now()}
	resp, err := cli.Get(ctx, key)
	op.Return, op.Done = time.Now(), err == nil
	if err == nil && len(resp.Kvs) > 0 {
		op.Value = string(resp.Kvs[0].Value)
	}
	r.add(op)
	return err
}

func (r *Recorder) add(op Op) {
	r.mu.Lock()
	r.ops = append(r.ops, op)
	r.mu.Unlock()
}

// Ops returns a copy of the history.
func (r *Recorder) Ops() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Op(nil), r.ops...)
}

type input struct {
	put   bool
	value string
}

// registerModel is a single-key register per key: every key is its own partition, whose state is the key's value
// ("" = absent). A put sets it; a get must return it.
var registerModel = porcupine.Model{
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
		i := in.(input)
		if i.put {
			return true, i.value
		}
		return out.(string) == state.(string), state
	},
	Equal: func(a, b any) bool { return a.(string) == b.(string) },
	DescribeOperation: func(in, out any) string {
		i := in.(input)
		if i.put {
			return fmt.Sprintf("put(%q)", i.value)
		}
		return fmt.Sprintf("get() -> %q", out.(string))
	},
	DescribeState: func(s any) string { return fmt.Sprintf("%q", s.(string)) },
}

// operations turns recorded ops into porcupine operations (porcupine orders them by time itself): a failed read is
// dropped (it constrains nothing); a failed write may take effect at any time after its call (its return is
// infinitely late).
func operations(ops []Op) []porcupine.Operation {
	var origin time.Time
	for _, op := range ops {
		if origin.IsZero() || op.Call.Before(origin) {
			origin = op.Call
		}
	}
	out := make([]porcupine.Operation, 0, len(ops))
	for _, op := range ops {
		ret := op.Return.Sub(origin).Nanoseconds()
		switch {
		case !op.Done && !op.Put:
			continue
		case !op.Done:
			ret = math.MaxInt64
		}
		out = append(out, porcupine.Operation{ClientId: op.Client, Input: input{put: op.Put, value: op.Value},
			Call: op.Call.Sub(origin).Nanoseconds(), Output: op.Value, Return: ret, Metadata: op.Key})
	}
	return out
}

// Verdict of a linearizability check.
type Verdict string

const (
	Linearizable    Verdict = "linearizable"
	NotLinearizable Verdict = "NOT linearizable"
	Unknown         Verdict = "unknown (checker timed out)"
)

// Check checks ops against the register model within timeout. When the history is not linearizable and vizPath
// is not empty, porcupine's visualization of the violation is written there.
func Check(ops []Op, timeout time.Duration, vizPath string) (Verdict, error) {
	res, info := porcupine.CheckOperationsVerbose(registerModel, operations(ops), timeout)
	switch res {
	case porcupine.Ok:
		return Linearizable, nil
	case porcupine.Unknown:
		return Unknown, nil
	}
	if vizPath != "" {
		if err := porcupine.VisualizePath(registerModel, info, vizPath); err != nil {
			return NotLinearizable, fmt.Errorf("linearizability visualization %s: %w", vizPath, err)
		}
	}
	return NotLinearizable, nil
}

// Workload runs clients that each put unique values to and get from a few keys under prefix, at about rate
// operations per second in total, until ctx ends.
func Workload(ctx context.Context, cli *clientv3.Client, r *Recorder, prefix string, keys, clients, rate int) {
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(time.Duration(clients) * time.Second / time.Duration(rate))
			defer tick.Stop()
			for n := 0; ; n++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				key := fmt.Sprintf("%s/%d", prefix, rand.IntN(keys))
				octx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				if rand.IntN(2) == 0 {
					_ = r.Put(octx, cli, c, key, fmt.Sprintf("c%d-%d", c, n))
				} else {
					_ = r.Get(octx, cli, c, key)
				}
				cancel()
			}
		}()
	}
	wg.Wait()
}

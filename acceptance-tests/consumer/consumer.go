// Package consumer is the acceptance suite's test consumer: clients that write to an etcd cluster through all
// members' endpoints (with the cluster's client certificate), record every operation with its invocation and
// completion time and result, read back every acknowledged write at the end, and check the whole history for
// linearizability with porcupine (model.go). Error counts are reported, but the verdict is linearizability and
// the read-back.
package consumer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Options shape the load.
type Options struct {
	// Prefix of every key this consumer writes (unique per run).
	Prefix string
	// WritesPerSecond of the unique-key writer (one write in flight at a time).
	WritesPerSecond int
	// RegisterClients each alternate a put of a unique value and a linearizable get, on one of RegisterKeys keys
	// chosen at random, RegisterOpsPerSecond times a second.
	RegisterClients      int
	RegisterKeys         int
	RegisterOpsPerSecond int
	// OpTimeout bounds one operation.
	OpTimeout time.Duration
}

// Consumer is one running load.
type Consumer struct {
	opts    Options
	cli     *clientv3.Client
	history *History

	mu      sync.Mutex
	started time.Time
	stopped time.Time
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	acked   []string // unique keys whose write was acknowledged
	nextCli int
}

// History is a concurrency-safe list of operations.
type History struct {
	mu  sync.Mutex
	ops []Op
}

// Add records op.
func (h *History) Add(op Op) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Ops returns a copy of the history.
func (h *History) Ops() []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Op(nil), h.ops...)
}

// NewClient returns an etcd client over endpoints. tlsCfg nil means plain HTTP endpoints.
func NewClient(endpoints []string, tlsCfg *tls.Config) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:            endpoints,
		TLS:                  tlsCfg,
		DialTimeout:          5 * time.Second,
		DialKeepAliveTime:    2 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
		Logger:               zap.NewNop(),
	})
}

// Start begins the load through cli (whose endpoints the caller may change with cli.SetEndpoints).
func Start(cli *clientv3.Client, opts Options) *Consumer {
	ctx, cancel := context.WithCancel(context.Background())
	c := &Consumer{opts: opts, cli: cli, history: &History{}, started: time.Now(), cancel: cancel, nextCli: opts.RegisterClients + 1}
	c.wg.Add(1)
	go c.uniqueWriter(ctx)
	for i := 1; i <= opts.RegisterClients; i++ {
		c.wg.Add(1)
		go c.registerClient(ctx, i)
	}
	return c
}

// History is what the consumer recorded so far.
func (c *Consumer) History() *History { return c.history }

// Prefix is the key prefix of this consumer's writes.
func (c *Consumer) Prefix() string { return c.opts.Prefix }

// NewClientID returns a client id for additional recorded clients (e.g. a probe pinned to one member).
func (c *Consumer) NewClientID() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextCli++
	return c.nextCli
}

func (c *Consumer) uniqueKey(n int) string { return fmt.Sprintf("%s/w/%08d", c.opts.Prefix, n) }

func (c *Consumer) registerKey(k int) string { return fmt.Sprintf("%s/r/%d", c.opts.Prefix, k) }

// Record runs one operation through cli and records it for client id.
func (c *Consumer) Record(ctx context.Context, cli *clientv3.Client, id int, kind Kind, key, value, endpoint string) Op {
	op := Op{Client: id, Kind: kind, Key: key, Value: value, Call: time.Now(), Endpoint: endpoint}
	octx, cancel := context.WithTimeout(ctx, c.opts.OpTimeout)
	var err error
	if kind == Put {
		_, err = cli.Put(octx, key, value)
	} else {
		var resp *clientv3.GetResponse
		resp, err = cli.Get(octx, key)
		if err == nil && len(resp.Kvs) > 0 {
			op.Value = string(resp.Kvs[0].Value)
		} else {
			op.Value = ""
		}
	}
	cancel()
	op.Return, op.OK = time.Now(), err == nil
	if err != nil {
		op.Err = err.Error()
	}
	c.history.Add(op)
	return op
}

func (c *Consumer) uniqueWriter(ctx context.Context) {
	defer c.wg.Done()
	tick := time.NewTicker(time.Second / time.Duration(c.opts.WritesPerSecond))
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		key := c.uniqueKey(n)
		// The writer's own context is not the run's: a write in flight when Stop is called completes normally.
		if op := c.Record(context.Background(), c.cli, 0, Put, key, key, ""); op.OK {
			c.mu.Lock()
			c.acked = append(c.acked, key)
			c.mu.Unlock()
		}
	}
}

func (c *Consumer) registerClient(ctx context.Context, id int) {
	defer c.wg.Done()
	tick := time.NewTicker(time.Second / time.Duration(c.opts.RegisterOpsPerSecond))
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		key := c.registerKey(rand.IntN(c.opts.RegisterKeys))
		if n%2 == 0 {
			c.Record(context.Background(), c.cli, id, Put, key, fmt.Sprintf("c%d-%d", id, n), "")
		} else {
			c.Record(context.Background(), c.cli, id, Get, key, "", "")
		}
	}
}

// Stop ends the load (operations in flight complete).
func (c *Consumer) Stop() {
	c.cancel()
	c.wg.Wait()
	c.mu.Lock()
	if c.stopped.IsZero() {
		c.stopped = time.Now()
	}
	c.mu.Unlock()
}

// Acked returns the unique keys whose write was acknowledged.
func (c *Consumer) Acked() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.acked...)
}

// ReadBack reads every key the consumer wrote with one linearizable range read through cli and records it in
// the history as a get of each key (a range read is atomic, so each get has the range read's interval). It
// returns the acknowledged unique keys the read did not find.
func (c *Consumer) ReadBack(ctx context.Context, cli *clientv3.Client) (missing []string, err error) {
	call := time.Now()
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	resp, err := cli.Get(rctx, c.opts.Prefix+"/", clientv3.WithPrefix())
	ret := time.Now()
	if err != nil {
		return nil, fmt.Errorf("reading back %s/: %w", c.opts.Prefix, err)
	}
	have := make(map[string]string, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		have[string(kv.Key)] = string(kv.Value)
	}
	keys := map[string]bool{}
	for _, op := range c.history.Ops() {
		keys[op.Key] = true
	}
	id := c.NewClientID()
	for k := range keys {
		c.history.Add(Op{Client: id, Kind: Get, Key: k, Value: have[k], Call: call, Return: ret, OK: true, Endpoint: "read-back"})
	}
	for _, k := range c.Acked() {
		if _, ok := have[k]; !ok {
			missing = append(missing, k)
		}
	}
	return missing, nil
}

// MissingVia reads the acknowledged unique keys with a serializable read through one member's client (its
// local copy, no quorum) and returns those it does not have: a member that has caught up has them all.
func (c *Consumer) MissingVia(ctx context.Context, cli *clientv3.Client, acked []string) ([]string, error) {
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := cli.Get(rctx, c.opts.Prefix+"/w/", clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithSerializable())
	if err != nil {
		return nil, err
	}
	have := make(map[string]bool, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		have[string(kv.Key)] = true
	}
	var missing []string
	for _, k := range acked {
		if !have[k] {
			missing = append(missing, k)
		}
	}
	return missing, nil
}

// Stats summarises a history.
type Stats struct {
	Duration     time.Duration
	WritesAcked  int
	WritesFailed int
	ReadsOK      int
	ReadsFailed  int
	// LongestStall is the longest time without any acknowledged write between the start and the end of the
	// load (writes through the multi-endpoint client only).
	LongestStall   time.Duration
	LongestStallAt time.Time
	MaxLatency     time.Duration
	// Errors counts failed operations by message (at most 10 distinct messages kept).
	Errors map[string]int
}

// Stats summarises what the multi-endpoint clients did between Start and Stop (probe and read-back
// operations, which name an endpoint, are left out).
func (c *Consumer) Stats() Stats {
	c.mu.Lock()
	start, stop := c.started, c.stopped
	c.mu.Unlock()
	if stop.IsZero() {
		stop = time.Now()
	}
	s := Stats{Duration: stop.Sub(start), Errors: map[string]int{}}
	var acks []time.Time
	for _, op := range c.history.Ops() {
		if op.Endpoint != "" {
			continue
		}
		switch {
		case op.Kind == Put && op.OK:
			s.WritesAcked++
			acks = append(acks, op.Return)
			if d := op.Return.Sub(op.Call); d > s.MaxLatency {
				s.MaxLatency = d
			}
		case op.Kind == Put:
			s.WritesFailed++
		case op.OK:
			s.ReadsOK++
		default:
			s.ReadsFailed++
		}
		if !op.OK {
			msg := op.Err
			if _, ok := s.Errors[msg]; ok || len(s.Errors) < 10 {
				s.Errors[msg]++
			}
		}
	}
	sort.Slice(acks, func(i, j int) bool { return acks[i].Before(acks[j]) })
	prev := start
	for _, t := range append(acks, stop) {
		if d := t.Sub(prev); d > s.LongestStall {
			s.LongestStall, s.LongestStallAt = d, prev
		}
		prev = t
	}
	return s
}

// ErrorSummary renders Errors on one line.
func (s Stats) ErrorSummary() string {
	var parts []string
	for msg, n := range s.Errors {
		parts = append(parts, fmt.Sprintf("%dx %s", n, msg))
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

// ErrNoLoad is returned when a check is asked of a consumer that acknowledged nothing.
var ErrNoLoad = errors.New("the consumer acknowledged no write")

// Package freeport hands tests a loopback TCP port that nothing is listening on and that the kernel will not
// hand out on its own.
//
// The usual trick — listen on :0, read the port, close — picks from the ephemeral range. Between the close and
// the test's own bind, any outbound connection on the machine (a client dialing an etcd member, go test talking
// to its children) may be given that same port as its source port, and the bind fails with "address already
// in use". That happened in CI. Ports below the ephemeral range (net.ipv4.ip_local_port_range) are never
// assigned as source ports, so only another listener can take them, and a random pick among thousands makes
// that unlikely; the listen check below rules out one that is already taken.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// lowest is the bottom of the range picked from; ports under it are left to well-known services.
const lowest = 10000

// Port returns a free port on 127.0.0.1 below the ephemeral range.
func Port() (int, error) {
	top := ephemeralLow() - 1
	if top <= lowest {
		return 0, fmt.Errorf("freeport: the ephemeral range starts at %d, leaving no ports between %d and it", top+1, lowest)
	}
	for range 100 {
		p := lowest + rand.IntN(top-lowest+1)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		l.Close()
		return p, nil
	}
	return 0, fmt.Errorf("freeport: no free port found between %d and %d after 100 tries", lowest, top)
}

// Addr returns "127.0.0.1:PORT" for a port from Port.
func Addr() (string, error) {
	p, err := Port()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), nil
}

// ephemeralLow is the first port of the kernel's ephemeral range; Linux's default 32768 when it cannot be read.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return n
}

// For is Port for a test: it fails the test when no port is found.
func For(t testing.TB) int {
	t.Helper()
	p, err := Port()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

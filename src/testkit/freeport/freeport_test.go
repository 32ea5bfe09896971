package freeport

import (
	"net"
	"testing"
)

// A port from Port is below the ephemeral range and can be listened on.
func TestPortIsBelowTheEphemeralRangeAndFree(t *testing.T) {
	low := ephemeralLow()
	for range 20 {
		p, err := Port()
		if err != nil {
			t.Fatal(err)
		}
		if p < lowest || p >= low {
			t.Fatalf("port %d is outside [%d, %d)", p, lowest, low)
		}
		a, _ := Addr()
		l, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("listen on %s: %v", a, err)
		}
		l.Close()
	}
}

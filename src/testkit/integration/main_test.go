package integration

import (
	"flag"
	"fmt"
	"os"
	"testing"
)

// TestMain skips the whole package under -short: every test here starts real etcd_ctl processes (minutes on two
// cores), and `go test -short` (TEST_SHORT=1 scripts/test) promises the fast unit tests only.
func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("integration: skipped under -short (real etcd_ctl clusters)")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

package integration

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// boshStop runs what the BOSH agent runs before it stops member i: pre-stop with the director's next states
// (none when preStop is nil, as with a director that predates pre-stop), then drain with BOSH_JOB_STATE and
// BOSH_JOB_NEXT_STATE carrying the given persistent disk sizes. It returns drain's output.
func (c *cluster) boshStop(i int, preStop []string, kind string, disk, nextDisk int) (string, error) {
	if preStop != nil {
		cmd := exec.Command(c.bin, "pre-stop", "--config", c.layout.ConfigPath(i))
		cmd.Env = append(os.Environ(), preStop...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return string(out), err
		}
	}
	cmd := exec.Command(c.bin, "drain", kind, "hash_changed", "--config", c.layout.ConfigPath(i))
	cmd.Env = append(os.Environ(), jobState("BOSH_JOB_STATE", disk), jobState("BOSH_JOB_NEXT_STATE", nextDisk))
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out) + string(ee.Stderr), err
	}
	return string(out), err
}

func jobState(name string, disk int) string {
	return fmt.Sprintf(`%s={"persistent_disk":%d}`, name, disk)
}

var keepAll = []string{"BOSH_VM_NEXT_STATE=keep", "BOSH_INSTANCE_NEXT_STATE=keep", "BOSH_DEPLOYMENT_NEXT_STATE=keep"}

// TestDisklessRollingRestartKeepsMemberIDs rolls a group without a persistent disk (BOSH_JOB_STATE and
// BOSH_JOB_NEXT_STATE both {"persistent_disk":0}) under a continuous writer: once with pre-stop's next states,
// once as a director without pre-stop would. No member may be removed; then a real scale-down of the same
// disk-less group (BOSH_INSTANCE_NEXT_STATE=delete) still removes the member.
func TestDisklessRollingRestartKeepsMemberIDs(t *testing.T) {
	c := newCluster(t, 3, withTLS(false, false))
	for i := 0; i < 3; i++ {
		c.start(i)
	}
	for i := 0; i < 3; i++ {
		c.waitReady(i, 2*time.Minute)
	}
	ids := c.memberIDs(0)
	require.Len(t, ids, 3)
	w := c.writer("/diskless")
	for _, preStop := range [][]string{keepAll, nil} {
		for i := 0; i < 3; i++ {
			out, err := c.boshStop(i, preStop, "job_changed", 0, 0)
			require.NoError(t, err, out)
			require.Equal(t, "0", strings.TrimSpace(out))
			require.Len(t, c.status((i+1)%3).Members, 3, "drain of member %d removed nothing", i)
			c.stop(i)
			c.start(i)
			c.waitReady(i, 2*time.Minute)
		}
	}
	res := w.Stop()
	require.Equal(t, ids, c.memberIDs(2), "every member kept its ID through two disk-less rolls")
	c.requireHealthy(3)
	c.requireNoLoss("/diskless", res)

	out, err := c.boshStop(2, []string{"BOSH_VM_NEXT_STATE=delete", "BOSH_INSTANCE_NEXT_STATE=delete", "BOSH_DEPLOYMENT_NEXT_STATE=keep"}, "job_shutdown", 0, 0)
	require.NoError(t, err, out)
	c.stop(2)
	c.resize(2)
	c.requireHealthy(2)
}

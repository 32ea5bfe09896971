package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSSH logs in to a VM's real sshd with the system ssh client, as `bosh ssh` does: setup creates the user
// with the key on that VM only, `sudo monit summary` works, cleanup removes the user and the login is refused.
func TestSSH(t *testing.T) {
	d := startDirector(t)
	ctx := context.Background()
	d.setup()
	d.mustTask(d.c.Deploy(ctx, d.manifest(manifestOpts{servers: 2, port: 8080})))
	insts := d.instances()
	s0, s1 := insts["servers/0"], insts["servers/1"]

	dir := t.TempDir()
	key := filepath.Join(dir, "id")
	out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput()
	require.NoError(t, err, string(out))
	pub, err := os.ReadFile(key + ".pub")
	require.NoError(t, err)
	user := "bosh_e2e" + strings.ToLower(s0.ID[:6])

	setup := func(target map[string]any) []struct {
		Status, Job, ID, IP string
		Index               int
		HostPublicKey       string `json:"host_public_key"`
	} {
		task := d.mustTask(d.c.SSH(ctx, "e2e", "setup", target, map[string]string{"user": user, "public_key": strings.TrimSpace(string(pub))}))
		raw, err := d.c.TaskOutput(ctx, task.ID, "result")
		require.NoError(t, err)
		var res []struct {
			Status, Job, ID, IP string
			Index               int
			HostPublicKey       string `json:"host_public_key"`
		}
		require.NoError(t, json.Unmarshal(raw, &res), string(raw))
		return res
	}
	res := setup(map[string]any{"job": "servers", "indexes": []string{"0"}, "ids": []string{"0"}})
	require.Len(t, res, 1)
	require.Equal(t, "success", res[0].Status)
	require.Equal(t, s0.ID, res[0].ID)
	require.Equal(t, s0.IPs[0], res[0].IP)
	require.True(t, strings.HasPrefix(res[0].HostPublicKey, "ssh-ed25519 "), res[0].HostPublicKey)

	known := filepath.Join(dir, "known_hosts")
	require.NoError(t, os.WriteFile(known, []byte(s0.IPs[0]+" "+res[0].HostPublicKey+"\n"), 0o600))
	ssh := func(ip string, cmd ...string) (string, error) {
		args := append([]string{"-i", key, "-o", "UserKnownHostsFile=" + known, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
			"-o", "ConnectTimeout=10", "-o", "IdentitiesOnly=yes", user + "@" + ip}, cmd...)
		b, err := exec.Command("ssh", args...).CombinedOutput()
		return string(b), err
	}
	summary, err := ssh(s0.IPs[0], "sudo", "/var/vcap/bosh/bin/monit", "summary")
	require.NoError(t, err, summary)
	require.Regexp(t, `(?m)^\s*server\s+OK\s+Process`, summary, "monit's summary of the job, as root through sudo")
	require.NotContains(t, summary, "unable to resolve host", "the VM's own /etc/hosts names it")
	groups, err := ssh(s0.IPs[0], "id", "-nG")
	require.NoError(t, err, groups)
	require.Contains(t, groups, "bosh_sshers")
	require.Contains(t, groups, "bosh_sudoers")

	// The user exists on that VM only: not on the host, not on the other VM.
	hostPasswd, err := os.ReadFile("/etc/passwd")
	require.NoError(t, err)
	require.NotContains(t, string(hostPasswd), user)
	require.Contains(t, d.vmExec(s0, "cat", "/etc/passwd"), user+":")
	require.NotContains(t, d.vmExec(s1, "cat", "/etc/passwd"), user)
	_, err = os.Stat("/etc/sudoers.d/bosh_sudoers")
	require.True(t, os.IsNotExist(err), "the sudo rule is the VM's own")

	// bosh ssh -c across the group: setup on both (servers/0 already has the user: it fails), so clean up first.
	d.mustTask(d.c.SSH(ctx, "e2e", "cleanup", map[string]any{"job": "servers", "indexes": []string{}, "ids": []string{}}, map[string]string{"user_regex": "^" + user}))
	out2, err := ssh(s0.IPs[0], "true")
	require.Error(t, err, "login refused after cleanup")
	require.Contains(t, out2, "Permission denied")
	require.NotContains(t, d.vmExec(s0, "cat", "/etc/passwd"), user)

	res = setup(map[string]any{"job": "servers", "indexes": []string{}, "ids": []string{}})
	require.Len(t, res, 2)
	var lines []string
	for _, r := range res {
		lines = append(lines, r.IP+" "+r.HostPublicKey)
	}
	require.NoError(t, os.WriteFile(known, []byte(strings.Join(lines, "\n")+"\n"), 0o600))
	for _, r := range res {
		host, err := ssh(r.IP, "hostname")
		require.NoError(t, err, host)
		require.NotEmpty(t, strings.TrimSpace(host))
	}
	d.mustTask(d.c.SSH(ctx, "e2e", "cleanup", map[string]any{"job": "servers", "indexes": []string{}, "ids": []string{}}, map[string]string{"user_regex": "^" + user}))
	_, err = ssh(s1.IPs[0], "true")
	require.Error(t, err)
}

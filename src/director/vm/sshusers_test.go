package vm

import (
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAddAndRemoveSSHUsers(t *testing.T) {
	base := userFiles{
		passwd: "root:x:0:0:root:/root:/bin/bash\nvcap:x:1000:1000::/home/vcap:/bin/bash\n",
		shadow: "root:*:19000:0:99999:7:::\nvcap:!:19000:0:99999:7:::\n",
		group:  "root:x:0:\nvcap:x:1000:\n",
	}
	f, uid, gid, err := addSSHUser(base, "bosh_abc123")
	require.NoError(t, err)
	require.Equal(t, 1001, uid)
	require.Equal(t, 1001, gid)
	require.Equal(t, base.passwd+"bosh_abc123:x:1001:1001::/var/vcap/bosh_ssh/bosh_abc123:/bin/bash\n", f.passwd)
	require.Equal(t, base.shadow+"bosh_abc123:*:20000:0:99999:7:::\n", f.shadow)
	require.Equal(t, "root:x:0:\nvcap:x:1000:\nbosh_sshers:x:900:bosh_abc123\nbosh_sudoers:x:901:bosh_abc123\nbosh_abc123:x:1001:\n", f.group)

	f2, uid2, _, err := addSSHUser(f, "bosh_def456")
	require.NoError(t, err)
	require.Equal(t, 1002, uid2)
	require.Contains(t, f2.group, "bosh_sshers:x:900:bosh_abc123,bosh_def456\n")
	_, _, _, err = addSSHUser(f2, "bosh_def456")
	require.ErrorContains(t, err, "exists already")
	_, _, _, err = addSSHUser(f2, "Root;rm")
	require.ErrorContains(t, err, "use lower-case letters")

	// Cleanup by the CLI's regex removes only the matching bosh ssh users.
	back, names := removeSSHUsers(f2, regexp.MustCompile("^bosh_abc123"))
	require.Equal(t, []string{"bosh_abc123"}, names)
	require.NotContains(t, back.passwd, "bosh_abc123")
	require.NotContains(t, back.shadow, "bosh_abc123")
	require.Contains(t, back.group, "bosh_sshers:x:900:bosh_def456\n")
	back, names = removeSSHUsers(back, regexp.MustCompile("^bosh_def456"))
	require.Equal(t, []string{"bosh_def456"}, names)
	require.Equal(t, base.passwd, back.passwd)
	require.Equal(t, base.shadow, back.shadow)
	require.Equal(t, "root:x:0:\nvcap:x:1000:\nbosh_sshers:x:900:\nbosh_sudoers:x:901:\n", back.group)

	// A regex that matches a normal account never removes it.
	same, names := removeSSHUsers(base, regexp.MustCompile("^"))
	require.Empty(t, names)
	require.Equal(t, base, same)
}

package vm

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// userFiles are a VM's own /etc/passwd, /etc/shadow and /etc/group (bind-mounted over the host's inside the VM
// only, see ssh.go).
type userFiles struct{ passwd, shadow, group string }

// sshGroups are the groups the agent puts a `bosh ssh` user in (bosh-agent platform/linux_platform.go
// CreateUser and AddUserToGroups): bosh_sshers may log in over ssh, bosh_sudoers may sudo without a password.
var sshGroups = []string{"bosh_sshers", "bosh_sudoers"}

// sshHome is where the agent makes `bosh ssh` users' home directories.
const sshHome = "/var/vcap/bosh_ssh"

var userName = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)

// firstFree is the lowest id >= from that no line of an /etc/passwd- or /etc/group-style file uses (field 3).
func firstFree(file string, from int) int {
	used := map[int]bool{}
	for _, l := range strings.Split(file, "\n") {
		if f := strings.Split(l, ":"); len(f) > 2 {
			if n, err := strconv.Atoi(f[2]); err == nil {
				used[n] = true
			}
		}
	}
	for used[from] {
		from++
	}
	return from
}

func hasEntry(file, name string) bool {
	for _, l := range strings.Split(file, "\n") {
		if strings.HasPrefix(l, name+":") {
			return true
		}
	}
	return false
}

func appendLine(file, line string) string {
	if file != "" && !strings.HasSuffix(file, "\n") {
		file += "\n"
	}
	return file + line + "\n"
}

// addSSHUser decides the VM's user files with a new `bosh ssh` user: the groups of sshGroups exist (created with
// free gids), the user gets the next free uid from 1000, its own group, the home under sshHome, bash, and the
// password "*" (no password login, but not locked: sshd refuses keys of locked accounts), and is a member of
// sshGroups. An existing user of that name is an error (the CLI makes a fresh name per session).
func addSSHUser(f userFiles, user string) (userFiles, int, int, error) {
	if !userName.MatchString(user) {
		return f, 0, 0, fmt.Errorf("ssh user %q: use lower-case letters, digits, _ and -", user)
	}
	if hasEntry(f.passwd, user) || hasEntry(f.group, user) {
		return f, 0, 0, fmt.Errorf("ssh user %q exists already on this VM", user)
	}
	for _, g := range sshGroups {
		if !hasEntry(f.group, g) {
			f.group = appendLine(f.group, fmt.Sprintf("%s:x:%d:", g, firstFree(f.group, 900)))
		}
	}
	uid := max(firstFree(f.passwd, 1000), firstFree(f.group, 1000))
	for firstFree(f.passwd, uid) != uid || firstFree(f.group, uid) != uid {
		uid++
	}
	f.passwd = appendLine(f.passwd, fmt.Sprintf("%s:x:%d:%d::%s/%s:/bin/bash", user, uid, uid, sshHome, user))
	f.shadow = appendLine(f.shadow, fmt.Sprintf("%s:*:20000:0:99999:7:::", user))
	f.group = appendLine(f.group, fmt.Sprintf("%s:x:%d:", user, uid))
	lines := strings.Split(strings.TrimSuffix(f.group, "\n"), "\n")
	for i, l := range lines {
		for _, g := range sshGroups {
			if strings.HasPrefix(l, g+":") {
				if strings.HasSuffix(l, ":") {
					lines[i] = l + user
				} else {
					lines[i] = l + "," + user
				}
			}
		}
	}
	f.group = strings.Join(lines, "\n") + "\n"
	return f, uid, uid, nil
}

// removeSSHUsers decides the VM's user files without the `bosh ssh` users whose name matches re (the cleanup's
// user_regex): their passwd, shadow and own group lines and their group memberships go; it returns their names.
// Only users with a home under sshHome are `bosh ssh` users; no other account is ever removed.
func removeSSHUsers(f userFiles, re *regexp.Regexp) (userFiles, []string) {
	gone := map[string]bool{}
	var names []string
	var keep []string
	for _, l := range strings.Split(strings.TrimSuffix(f.passwd, "\n"), "\n") {
		p := strings.Split(l, ":")
		if len(p) > 5 && re.MatchString(p[0]) && strings.HasPrefix(p[5], sshHome+"/") {
			gone[p[0]] = true
			names = append(names, p[0])
			continue
		}
		keep = append(keep, l)
	}
	if len(names) == 0 {
		return f, nil
	}
	f.passwd = strings.Join(keep, "\n") + "\n"
	keep = nil
	for _, l := range strings.Split(strings.TrimSuffix(f.shadow, "\n"), "\n") {
		if name, _, _ := strings.Cut(l, ":"); !gone[name] {
			keep = append(keep, l)
		}
	}
	f.shadow = strings.Join(keep, "\n") + "\n"
	keep = nil
	for _, l := range strings.Split(strings.TrimSuffix(f.group, "\n"), "\n") {
		p := strings.Split(l, ":")
		if gone[p[0]] {
			continue
		}
		if len(p) == 4 && p[3] != "" {
			var members []string
			for _, m := range strings.Split(p[3], ",") {
				if !gone[m] {
					members = append(members, m)
				}
			}
			p[3] = strings.Join(members, ",")
			l = strings.Join(p, ":")
		}
		keep = append(keep, l)
	}
	f.group = strings.Join(keep, "\n") + "\n"
	return f, names
}

package auth

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPlan(t *testing.T) {
	appRW := Permission{Key: "/app/", RangeEnd: "/app0", Access: "readwrite"}
	cfgR := Permission{Key: "/config", Access: "read"}
	root := User{Name: "root", Roles: []string{"root"}}
	admin := User{Name: "etcd-client", Roles: []string{"root"}}
	app := User{Name: "app", Password: true, Roles: []string{"app"}}
	want := Desired{Enabled: true, Users: []User{root, admin, app}, Roles: map[string][]Permission{"app": {appRW, cfgR}}}
	synced := Current{Enabled: true,
		Users:      map[string][]string{"root": {"root"}, "etcd-client": {"root"}, "app": {"app"}},
		Roles:      map[string][]Permission{"root": {}, "app": {appRW, cfgR}},
		PasswordOK: map[string]bool{"app": true}}
	with := func(edit func(*Current)) Current {
		c := Current{Enabled: synced.Enabled, Users: map[string][]string{}, Roles: map[string][]Permission{}, PasswordOK: map[string]bool{}}
		for k, v := range synced.Users {
			c.Users[k] = append([]string{}, v...)
		}
		for k, v := range synced.Roles {
			c.Roles[k] = append([]Permission{}, v...)
		}
		for k, v := range synced.PasswordOK {
			c.PasswordOK[k] = v
		}
		edit(&c)
		return c
	}
	removing := want
	removing.RemoveUndeclared = true
	for _, tc := range []struct {
		name string
		d    Desired
		cur  Current
		want []string
	}{
		{"fresh cluster: roles, then users, auth enabled last", want, Current{Users: map[string][]string{}, Roles: map[string][]Permission{}},
			[]string{"add-role app", `grant-permission app: readwrite ["/app/", "/app0")`, `grant-permission app: read "/config"`,
				"add-user root (password false)", "grant-role root to/from root", "add-user etcd-client (password false)", "grant-role root to/from etcd-client",
				"add-user app (password true)", "grant-role app to/from app", "enable-auth"}},
		{"in sync: nothing", want, synced, nil},
		{"changed password: set it", want, with(func(c *Current) { c.PasswordOK["app"] = false }), []string{"set-password app"}},
		{"auth off in etcd, same users: set password (cannot check), enable", want, with(func(c *Current) { c.Enabled = false; c.PasswordOK = map[string]bool{} }),
			[]string{"set-password app", "enable-auth"}},
		{"permission narrowed", Desired{Enabled: true, Users: want.Users, Roles: map[string][]Permission{"app": {cfgR}}}, synced,
			[]string{`revoke-permission app: readwrite ["/app/", "/app0")`}},
		{"role taken from a user, another given", Desired{Enabled: true, Users: []User{root, admin, {Name: "app", Password: true, Roles: []string{"ops"}}},
			Roles: map[string][]Permission{"app": {appRW, cfgR}, "ops": {}}}, synced,
			[]string{"add-role ops", "grant-role ops to/from app", "revoke-role app to/from app"}},
		{"undeclared user and role kept by default", want, with(func(c *Current) { c.Users["manual"] = nil; c.Roles["manual"] = nil }), nil},
		{"undeclared user and role removed when asked, root role never", removing, with(func(c *Current) { c.Users["manual"] = nil; c.Roles["manual"] = nil }),
			[]string{"delete-user manual", "delete-role manual"}},
		{"auth turned off: disable only, users kept", Desired{Enabled: false, Users: want.Users}, synced, []string{"disable-auth"}},
		{"auth off and never on: nothing", Desired{}, Current{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, a := range Plan(tc.d, tc.cur) {
				got = append(got, a.String())
			}
			require.Equal(t, tc.want, got)
		})
	}
}

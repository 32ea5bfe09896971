// Package auth reconciles etcd's authentication and role-based access control with the manifest
// (etcd.auth.*): the users, their roles and passwords, the roles and their key permissions, and whether
// authentication is on. Plan is the pure rule; Reconcile reads the cluster's state, plans and applies, one
// member at a time under a lock in the cluster.
package auth

import (
	"fmt"
	"slices"
	"sort"
)

// Permission is access to the keys [Key, RangeEnd) (RangeEnd "" = Key alone), as etcd stores it.
type Permission struct {
	Key, RangeEnd string
	// Access is config.AccessRead, AccessWrite or AccessReadWrite.
	Access string
}

func (p Permission) String() string {
	if p.RangeEnd == "" {
		return fmt.Sprintf("%s %q", p.Access, p.Key)
	}
	return fmt.Sprintf("%s [%q, %q)", p.Access, p.Key, p.RangeEnd)
}

// User is a user as declared (Password: the manifest gives one) or as etcd has it.
type User struct {
	Name     string
	Password bool
	Roles    []string
}

// Desired is what the manifest asks for. Users includes root and etcd_ctl's own user.
type Desired struct {
	Enabled          bool
	Users            []User
	Roles            map[string][]Permission
	RemoveUndeclared bool
}

// Current is what the cluster has. PasswordOK names the declared users whose manifest password etcd already
// accepts (checked by authenticating), so that an unchanged password is not set again.
type Current struct {
	Enabled    bool
	Users      map[string][]string // user → roles
	Roles      map[string][]Permission
	PasswordOK map[string]bool
}

// Kind is one change to etcd's auth state.
type Kind int

const (
	AddRole Kind = iota
	GrantPermission
	RevokePermission
	AddUser
	SetPassword
	GrantRole
	RevokeRole
	DeleteUser
	DeleteRole
	EnableAuth
	DisableAuth
)

func (k Kind) String() string {
	return [...]string{"add-role", "grant-permission", "revoke-permission", "add-user", "set-password", "grant-role",
		"revoke-role", "delete-user", "delete-role", "enable-auth", "disable-auth"}[k]
}

// Action is one change. NoPassword (AddUser) makes a user that only a client certificate authenticates.
type Action struct {
	Kind       Kind
	User, Role string
	Perm       Permission
	NoPassword bool
}

func (a Action) String() string {
	switch a.Kind {
	case AddRole, DeleteRole:
		return fmt.Sprintf("%s %s", a.Kind, a.Role)
	case GrantPermission, RevokePermission:
		return fmt.Sprintf("%s %s: %s", a.Kind, a.Role, a.Perm)
	case AddUser:
		return fmt.Sprintf("%s %s (password %t)", a.Kind, a.User, !a.NoPassword)
	case SetPassword, DeleteUser:
		return fmt.Sprintf("%s %s", a.Kind, a.User)
	case GrantRole, RevokeRole:
		return fmt.Sprintf("%s %s to/from %s", a.Kind, a.Role, a.User)
	}
	return a.Kind.String()
}

// Plan is the reconcile rule. With authentication wanted: roles first (added, permissions granted and revoked
// to match), then users (added, passwords set where etcd does not accept the manifest's, roles granted and
// revoked to match), then, with RemoveUndeclared, undeclared users and roles deleted, and authentication enabled
// last (etcd requires root to exist with the root role by then). Without: only authentication disabled, users
// and roles kept. The root role is etcd's own: never added, changed or deleted.
func Plan(d Desired, cur Current) []Action {
	if !d.Enabled {
		if cur.Enabled {
			return []Action{{Kind: DisableAuth}}
		}
		return nil
	}
	var out []Action
	for _, name := range sortedKeys(d.Roles) {
		have, exists := cur.Roles[name]
		if !exists {
			out = append(out, Action{Kind: AddRole, Role: name})
		}
		for _, p := range d.Roles[name] {
			if !slices.Contains(have, p) {
				out = append(out, Action{Kind: GrantPermission, Role: name, Perm: p})
			}
		}
		for _, p := range have {
			if !slices.Contains(d.Roles[name], p) {
				out = append(out, Action{Kind: RevokePermission, Role: name, Perm: p})
			}
		}
	}
	declared := map[string]bool{}
	for _, u := range d.Users {
		declared[u.Name] = true
		have, exists := cur.Users[u.Name]
		switch {
		case !exists:
			out = append(out, Action{Kind: AddUser, User: u.Name, NoPassword: !u.Password})
		case u.Password && !cur.PasswordOK[u.Name]:
			out = append(out, Action{Kind: SetPassword, User: u.Name})
		}
		for _, r := range u.Roles {
			if !slices.Contains(have, r) {
				out = append(out, Action{Kind: GrantRole, User: u.Name, Role: r})
			}
		}
		for _, r := range have {
			if !slices.Contains(u.Roles, r) {
				out = append(out, Action{Kind: RevokeRole, User: u.Name, Role: r})
			}
		}
	}
	if d.RemoveUndeclared {
		for _, name := range sortedKeys(cur.Users) {
			if !declared[name] {
				out = append(out, Action{Kind: DeleteUser, User: name})
			}
		}
		for _, name := range sortedKeys(cur.Roles) {
			if _, ok := d.Roles[name]; !ok && name != rootRole {
				out = append(out, Action{Kind: DeleteRole, Role: name})
			}
		}
	}
	if !cur.Enabled {
		out = append(out, Action{Kind: EnableAuth})
	}
	return out
}

const rootRole = "root"

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

package auth

import (
	"context"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/authpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/etcdclient"
	"github.com/etcd-release/etcd-release/src/etcd_ctl/retry"
)

// LockKey serialises reconciles across the cluster: one member at a time, as every member runs one per start.
const LockKey = "/etcd-release/auth-lock"

// DesiredFrom is the manifest's auth state: the declared users and roles, root (with etcd.auth.root_password
// or none) and etcd_ctl's own user (the common name of etcd.client_cert), both with the root role.
func DesiredFrom(c *config.Config) Desired {
	a := c.Etcd.Auth
	d := Desired{Enabled: a.Enabled, RemoveUndeclared: a.RemoveUndeclared, Roles: map[string][]Permission{}}
	d.Users = append(d.Users, User{Name: config.RootUser, Password: a.RootPassword != "", Roles: []string{config.RootRole}})
	if admin := c.AdminUser(); admin != "" {
		d.Users = append(d.Users, User{Name: admin, Roles: []string{config.RootRole}})
	}
	for _, u := range a.Users {
		d.Users = append(d.Users, User{Name: u.Name, Password: u.Password != "", Roles: append([]string{}, u.Roles...)})
	}
	for _, r := range a.Roles {
		perms := []Permission{}
		for _, p := range r.Permissions {
			if p.Prefix != "" {
				perms = append(perms, Permission{Key: p.Prefix, RangeEnd: clientv3.GetPrefixRangeEnd(p.Prefix), Access: p.Access})
			} else {
				perms = append(perms, Permission{Key: p.Key, Access: p.Access})
			}
		}
		d.Roles[r.Name] = perms
	}
	return d
}

// passwords maps the users with a manifest password to it.
func passwords(c *config.Config) map[string]string {
	pw := map[string]string{}
	if c.Etcd.Auth.RootPassword != "" {
		pw[config.RootUser] = c.Etcd.Auth.RootPassword.Value()
	}
	for _, u := range c.Etcd.Auth.Users {
		if u.Password != "" {
			pw[u.Name] = u.Password.Value()
		}
	}
	return pw
}

var accessOf = map[authpb.Permission_Type]string{authpb.READ: config.AccessRead, authpb.WRITE: config.AccessWrite, authpb.READWRITE: config.AccessReadWrite}

var permTypeOf = map[string]clientv3.PermissionType{
	config.AccessRead: clientv3.PermissionType(clientv3.PermRead), config.AccessWrite: clientv3.PermissionType(clientv3.PermWrite),
	config.AccessReadWrite: clientv3.PermissionType(clientv3.PermReadWrite),
}

// ReadCurrent reads the cluster's auth state; pw are the manifest passwords to check (with auth on only).
func ReadCurrent(ctx context.Context, cli *clientv3.Client, pw map[string]string) (Current, error) {
	cur := Current{Users: map[string][]string{}, Roles: map[string][]Permission{}, PasswordOK: map[string]bool{}}
	st, err := cli.AuthStatus(ctx)
	if err != nil {
		return cur, fmt.Errorf("reading the auth status: %w", err)
	}
	cur.Enabled = st.Enabled
	users, err := cli.UserList(ctx)
	if err != nil {
		return cur, fmt.Errorf("listing users: %w", err)
	}
	for _, name := range users.Users {
		u, err := cli.UserGet(ctx, name)
		if err != nil {
			return cur, fmt.Errorf("reading user %s: %w", name, err)
		}
		cur.Users[name] = u.Roles
	}
	roles, err := cli.RoleList(ctx)
	if err != nil {
		return cur, fmt.Errorf("listing roles: %w", err)
	}
	for _, name := range roles.Roles {
		r, err := cli.RoleGet(ctx, name)
		if err != nil {
			return cur, fmt.Errorf("reading role %s: %w", name, err)
		}
		perms := []Permission{}
		for _, p := range r.Perm {
			perms = append(perms, Permission{Key: string(p.Key), RangeEnd: string(p.RangeEnd), Access: accessOf[p.PermType]})
		}
		cur.Roles[name] = perms
	}
	if cur.Enabled {
		for name, p := range pw {
			if _, exists := cur.Users[name]; !exists {
				continue
			}
			_, err := cli.Authenticate(ctx, name, p)
			cur.PasswordOK[name] = err == nil
		}
	}
	return cur, nil
}

// apply makes one change. Passwords come from pw; none is ever logged.
func apply(ctx context.Context, cli *clientv3.Client, a Action, pw map[string]string) error {
	var err error
	switch a.Kind {
	case AddRole:
		_, err = cli.RoleAdd(ctx, a.Role)
	case GrantPermission:
		_, err = cli.RoleGrantPermission(ctx, a.Role, a.Perm.Key, a.Perm.RangeEnd, permTypeOf[a.Perm.Access])
	case RevokePermission:
		_, err = cli.RoleRevokePermission(ctx, a.Role, a.Perm.Key, a.Perm.RangeEnd)
	case AddUser:
		_, err = cli.UserAddWithOptions(ctx, a.User, pw[a.User], &clientv3.UserAddOptions{NoPassword: a.NoPassword})
	case SetPassword:
		_, err = cli.UserChangePassword(ctx, a.User, pw[a.User])
	case GrantRole:
		_, err = cli.UserGrantRole(ctx, a.User, a.Role)
	case RevokeRole:
		_, err = cli.UserRevokeRole(ctx, a.User, a.Role)
	case DeleteUser:
		_, err = cli.UserDelete(ctx, a.User)
	case DeleteRole:
		_, err = cli.RoleDelete(ctx, a.Role)
	case EnableAuth:
		_, err = cli.AuthEnable(ctx)
	case DisableAuth:
		_, err = cli.AuthDisable(ctx)
	}
	return err
}

// Reconcile brings the cluster's auth state to the manifest's, holding LockKey. It returns the actions taken.
func Reconcile(ctx context.Context, c *config.Config, cli *clientv3.Client, lg *zap.Logger) ([]Action, error) {
	if !c.Etcd.Auth.Enabled {
		// The common case needs no lock: authentication is off and stays off.
		st, err := cli.AuthStatus(ctx)
		if err != nil {
			return nil, fmt.Errorf("reading the auth status: %w", err)
		}
		if !st.Enabled {
			return nil, nil
		}
	}
	s, err := concurrency.NewSession(cli, concurrency.WithTTL(30), concurrency.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("opening a session for %s: %w", LockKey, err)
	}
	defer s.Close()
	mu := concurrency.NewMutex(s, LockKey)
	if err := mu.Lock(ctx); err != nil {
		return nil, fmt.Errorf("taking %s: %w", LockKey, err)
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = mu.Unlock(uctx)
	}()
	pw := passwords(c)
	cur, err := ReadCurrent(ctx, cli, pw)
	if err != nil {
		return nil, err
	}
	actions := Plan(DesiredFrom(c), cur)
	for i, a := range actions {
		if err := apply(ctx, cli, a, pw); err != nil {
			return actions[:i], fmt.Errorf("%s: %w", a, err)
		}
		lg.Info("changed etcd's access control", zap.String("change", a.String()), zap.String("reason", "etcd.auth.* in the manifest"))
	}
	return actions, nil
}

// Start reconciles in the background once this member runs, retrying until it succeeds or ctx ends. A cluster
// that never had auth and whose manifest does not ask for it needs nothing, and nothing is done.
func Start(ctx context.Context, c *config.Config, lg *zap.Logger) {
	go func() {
		lg := lg.Named("auth")
		err := retry.Poll(ctx, retry.Options{Interval: 5 * time.Second, LogEvery: time.Minute, Waiting: func(p retry.Progress) {
			lg.Warn("reconciling etcd's access control failed; retrying", zap.Int("attempts", p.Attempts), zap.Error(p.Last))
		}}, func(ctx context.Context) error {
			cli, err := etcdclient.New(c, []string{c.Self().ClientURL}, 5*time.Second)
			if err != nil {
				return err
			}
			defer cli.Close()
			rctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			actions, err := Reconcile(rctx, c, cli, lg)
			if err == nil {
				lg.Info("etcd's access control matches the manifest", zap.Bool("enabled", c.Etcd.Auth.Enabled), zap.Int("changes", len(actions)))
			}
			return err
		})
		if err != nil && ctx.Err() == nil {
			lg.Error("reconciling etcd's access control gave up", zap.Error(err))
		}
	}()
}

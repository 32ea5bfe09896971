package config

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
)

// AuthProperties are the `etcd.auth.*` job properties: etcd's authentication and role-based access control,
// reconciled from the manifest at every start (see the auth package).
type AuthProperties struct {
	// Enabled turns etcd authentication on (and off again when set back to false).
	Enabled bool `json:"enabled"`
	// RootPassword is the password of etcd's root user; empty: root has no password (only a client certificate
	// with the common name "root" authenticates as it).
	RootPassword Secret `json:"root_password"`
	// Users are the users the manifest declares; Roles the roles.
	Users []AuthUser `json:"users"`
	Roles []AuthRole `json:"roles"`
	// RemoveUndeclared deletes users and roles the manifest does not declare (root and etcd_ctl's own user
	// stay). Off by default: users made by hand with etcdctl are kept.
	RemoveUndeclared bool `json:"remove_undeclared"`
}

// AuthUser is one etcd user. Without a password it authenticates only with a client certificate whose common
// name is its name (etcd maps the common name of a verified client certificate to the user).
type AuthUser struct {
	Name     string   `json:"name"`
	Password Secret   `json:"password"`
	Roles    []string `json:"roles"`
}

// AuthRole is one etcd role and its key permissions.
type AuthRole struct {
	Name        string           `json:"name"`
	Permissions []AuthPermission `json:"permissions"`
}

// AuthPermission grants access to one key or to every key under a prefix.
type AuthPermission struct {
	Key    string `json:"key"`
	Prefix string `json:"prefix"`
	// Access is "read", "write" or "readwrite".
	Access string `json:"access"`
}

// Access values of AuthPermission.
const (
	AccessRead      = "read"
	AccessWrite     = "write"
	AccessReadWrite = "readwrite"
)

// RootUser and RootRole are etcd's built-in administrator names.
const (
	RootUser = "root"
	RootRole = "root"
)

// AdminUser is the etcd user etcd_ctl acts as: the common name of etcd.client_cert (etcd maps it to a user when
// authentication is on). It is "" when the certificate cannot be read.
func (c *Config) AdminUser() string {
	block, _ := pem.Decode([]byte(c.Etcd.ClientCert))
	if block == nil {
		return ""
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return ""
	}
	return cert.Subject.CommonName
}

// validateAuth checks etcd.auth.*: names unique and non-empty, roles of users declared, permissions well formed.
func (c *Config) validateAuth(add addFunc) {
	a := c.Etcd.Auth
	if !a.Enabled {
		return
	}
	if !c.Etcd.RequireSSL {
		add("etcd.auth.enabled", "needs etcd.require_ssl: etcd_ctl authenticates to etcd with etcd.client_cert (its common name becomes a user with the root role), which also works while a member has no leader, when a password login cannot")
	}
	roles := map[string]bool{RootRole: true}
	for i, r := range a.Roles {
		prop := fmt.Sprintf("etcd.auth.roles[%d]", i)
		switch {
		case r.Name == "":
			add(prop+".name", "is empty")
		case r.Name == RootRole:
			add(prop+".name", "%q is etcd's built-in role; it cannot be declared", RootRole)
		case roles[r.Name]:
			add(prop+".name", "%q is declared twice", r.Name)
		}
		roles[r.Name] = true
		for j, p := range r.Permissions {
			pp := fmt.Sprintf("%s.permissions[%d]", prop, j)
			if (p.Key == "") == (p.Prefix == "") {
				add(pp, "give exactly one of key (one key) or prefix (every key under it)")
			}
			switch p.Access {
			case AccessRead, AccessWrite, AccessReadWrite:
			default:
				add(pp+".access", "got %q, must be %q, %q or %q", p.Access, AccessRead, AccessWrite, AccessReadWrite)
			}
		}
	}
	users := map[string]bool{}
	admin := c.AdminUser()
	for i, u := range a.Users {
		prop := fmt.Sprintf("etcd.auth.users[%d]", i)
		switch {
		case u.Name == "":
			add(prop+".name", "is empty")
		case u.Name == RootUser:
			add(prop+".name", "%q is etcd's root user; set its password with etcd.auth.root_password", RootUser)
		case admin != "" && u.Name == admin:
			add(prop+".name", "%q is the common name of etcd.client_cert, the user etcd_ctl acts as (it always has the root role); give the client another name or etcd_ctl another certificate", u.Name)
		case users[u.Name]:
			add(prop+".name", "%q is declared twice", u.Name)
		}
		users[u.Name] = true
		for j, r := range u.Roles {
			if !roles[r] {
				add(fmt.Sprintf("%s.roles[%d]", prop, j), "role %q is not declared in etcd.auth.roles", r)
			}
		}
	}
	if admin == RootUser {
		add("etcd.client_cert", "has the common name %q; etcd_ctl needs a user of its own next to root", RootUser)
	}
}

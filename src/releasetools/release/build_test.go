package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// fixture copies testdata/repo into a fresh directory (outside any git work tree) so a test may change it.
func fixture(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "repo")
	require.NoError(t, os.CopyFS(dst, os.DirFS(filepath.Join("testdata", "repo"))))
	return dst
}

func build(t *testing.T, repo string, opts BuildOptions) (string, *Manifest) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "release.tgz")
	m, err := Build(repo, out, opts)
	require.NoError(t, err)
	return out, m
}

// tgzEntries returns name -> content of every regular file in a gzipped tar, and the entry names in order.
func tgzEntries(t *testing.T, data []byte) (map[string][]byte, []string) {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(data))
	require.NoError(t, err)
	tr := tar.NewReader(gz)
	files := map[string][]byte{}
	var names []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		names = append(names, hdr.Name)
		if hdr.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			require.NoError(t, err)
			files[hdr.Name] = b
		}
	}
	return files, names
}

// writeTgz writes files (name -> content) as a gzipped tar, in sorted order.
func writeTgz(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := newTgzWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		require.NoError(t, w.addFile(n, 0o644, int64(len(files[n])), bytes.NewReader(files[n])))
	}
	require.NoError(t, w.close())
	return buf.Bytes()
}

func sha1hex(b []byte) string {
	s := sha1.Sum(b)
	return hex.EncodeToString(s[:])
}

func TestBuildAndRead(t *testing.T) {
	repo := fixture(t)
	out, m := build(t, repo, BuildOptions{})

	require.Equal(t, "fixture", m.Name)
	require.Equal(t, "0+dev.1", m.Version)
	require.Equal(t, "unknown", m.CommitHash)
	require.False(t, m.UncommittedChanges)
	require.Len(t, m.Jobs, 2)
	require.Len(t, m.Packages, 2)

	data, err := os.ReadFile(out)
	require.NoError(t, err)
	outer, names := tgzEntries(t, data)
	require.Equal(t, []string{"./", "./release.MF", "./license.tgz", "./jobs/", "./jobs/client.tgz", "./jobs/server.tgz",
		"./packages/", "./packages/app.tgz", "./packages/golang.tgz"}, names)

	t.Run("release.MF", func(t *testing.T) {
		parsed, err := ParseManifest(outer["./release.MF"])
		require.NoError(t, err)
		require.Equal(t, m, parsed)
		for _, j := range m.Jobs {
			require.Equal(t, sha1hex(outer["./jobs/"+j.Name+".tgz"]), j.SHA1, "job %s sha1", j.Name)
			require.Equal(t, j.Fingerprint, j.Version, "a job's version is its fingerprint")
			require.Len(t, j.Fingerprint, 40)
		}
		for _, p := range m.Packages {
			require.Equal(t, sha1hex(outer["./packages/"+p.Name+".tgz"]), p.SHA1, "package %s sha1", p.Name)
			require.Equal(t, p.Fingerprint, p.Version)
		}
		require.Equal(t, sha1hex(outer["./license.tgz"]), m.License.SHA1)
		require.Equal(t, []string{"app"}, m.Jobs[1].Packages)
		require.Equal(t, "server", m.Jobs[1].Name)
		require.Equal(t, []string{"golang"}, m.Packages[0].Dependencies)
		require.Equal(t, []string{}, m.Packages[1].Dependencies)
	})

	t.Run("job archive layout", func(t *testing.T) {
		files, names := tgzEntries(t, outer["./jobs/server.tgz"])
		require.Equal(t, []string{"./", "./job.MF", "./monit", "./templates/", "./templates/bin/", "./templates/bin/ctl.erb",
			"./templates/config.json.erb"}, names)
		spec, err := os.ReadFile(filepath.Join(repo, "jobs", "server", "spec"))
		require.NoError(t, err)
		require.Equal(t, spec, files["./job.MF"])
	})

	t.Run("package archive layout: packaging, globbed src files minus excluded, blobs", func(t *testing.T) {
		_, names := tgzEntries(t, outer["./packages/app.tgz"])
		require.Equal(t, []string{"./", "./app/", "./app/README.md", "./app/main.go", "./app/util/", "./app/util/util.go",
			"./packaging"}, names)
		files, names := tgzEntries(t, outer["./packages/golang.tgz"])
		require.Equal(t, []string{"./", "./golang/", "./golang/toolchain.txt", "./packaging"}, names)
		require.Equal(t, "fake go toolchain for tests\n", string(files["./golang/toolchain.txt"]))
	})

	t.Run("read back", func(t *testing.T) {
		r, err := Read(out)
		require.NoError(t, err)
		require.Equal(t, *m, r.Manifest)
		require.Equal(t, []string{"golang", "app"}, packageNames(r.Packages), "dependencies first")

		server, ok := r.Job("server")
		require.True(t, ok)
		require.Equal(t, map[string]string{"bin/ctl.erb": "bin/ctl", "config.json.erb": "config/config.json"}, server.Spec.Templates)
		require.Equal(t, []string{"bin/ctl.erb", "config.json.erb"}, server.Spec.TemplateSources())
		require.Equal(t, 8080, server.Spec.Properties["server.port"].Default)
		require.Equal(t, "Port", server.Spec.Properties["server.port"].Description)
		require.Nil(t, server.Spec.Properties["server.name"].Default)
		require.Equal(t, []LinkDef{{Name: "server", Type: "server", Properties: []string{"server.port"}}}, server.Spec.Provides)
		require.Contains(t, string(server.Templates["bin/ctl.erb"]), `p("server.port")`)
		require.Contains(t, string(server.Monit), "check process server")
		require.Equal(t, []string{"app"}, server.Packages)
		client, ok := r.Job("client")
		require.True(t, ok)
		require.Equal(t, []LinkDef{{Name: "server", Type: "server"}}, client.Spec.Consumes)
		require.Empty(t, client.Monit)

		app, ok := r.Package("app")
		require.True(t, ok)
		require.Equal(t, []string{"golang"}, app.Dependencies)
		dir := t.TempDir()
		require.NoError(t, app.Extract(dir))
		var got []string
		require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				rel, _ := filepath.Rel(dir, p)
				got = append(got, filepath.ToSlash(rel))
			}
			return err
		}))
		require.Equal(t, []string{"app/README.md", "app/main.go", "app/util/util.go", "packaging"}, got)
		main, err := os.ReadFile(filepath.Join(dir, "app", "main.go"))
		require.NoError(t, err)
		require.Equal(t, "package main\n\nfunc main() {}\n", string(main))
	})
}

func packageNames(ps []*Package) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

func TestBuildIsDeterministic(t *testing.T) {
	repo := fixture(t)
	a, ma := build(t, repo, BuildOptions{})
	// A second copy of the tree, made later (new mtimes), must give the same bytes.
	b, mb := build(t, fixture(t), BuildOptions{})
	da, err := os.ReadFile(a)
	require.NoError(t, err)
	db, err := os.ReadFile(b)
	require.NoError(t, err)
	require.Equal(t, ma, mb)
	require.True(t, bytes.Equal(da, db), "same tree, same tarball")

	t.Run("fingerprints follow content", func(t *testing.T) {
		require.NoError(t, os.WriteFile(filepath.Join(repo, "src", "app", "util", "util.go"), []byte("package util // changed\n"), 0o644))
		_, mc := build(t, repo, BuildOptions{})
		require.NotEqual(t, ma.Packages[0].Fingerprint, mc.Packages[0].Fingerprint, "app changed")
		require.Equal(t, ma.Packages[1].Fingerprint, mc.Packages[1].Fingerprint, "golang did not")
		require.Equal(t, ma.Jobs, mc.Jobs)

		require.NoError(t, os.WriteFile(filepath.Join(repo, "jobs", "client", "monit"), []byte("# monit\n"), 0o644))
		_, md := build(t, repo, BuildOptions{})
		require.NotEqual(t, ma.Jobs[0].Fingerprint, md.Jobs[0].Fingerprint, "client changed")
		require.Equal(t, ma.Jobs[1].Fingerprint, md.Jobs[1].Fingerprint, "server did not")

		require.NoError(t, os.Chmod(filepath.Join(repo, "src", "app", "main.go"), 0o755))
		_, me := build(t, repo, BuildOptions{})
		require.NotEqual(t, mc.Packages[0].Fingerprint, me.Packages[0].Fingerprint, "a mode change counts")
	})

	t.Run("a dependency change changes the fingerprint", func(t *testing.T) {
		repo := fixture(t)
		require.NoError(t, os.WriteFile(filepath.Join(repo, "packages", "app", "spec"),
			[]byte("name: app\nfiles: [app/**/*.go, app/README.md]\nexcluded_files: [app/**/*_test.go]\n"), 0o644))
		_, m := build(t, repo, BuildOptions{})
		require.NotEqual(t, ma.Packages[0].Fingerprint, m.Packages[0].Fingerprint)
	})
}

func TestBuildOptionsAndVersions(t *testing.T) {
	repo := fixture(t)
	out, m := build(t, repo, BuildOptions{Name: "other", Version: "7.1", SHA256: true})
	require.Equal(t, "other", m.Name)
	require.Equal(t, "7.1", m.Version)
	data, err := os.ReadFile(out)
	require.NoError(t, err)
	outer, _ := tgzEntries(t, data)
	sum := sha256.Sum256(outer["./jobs/server.tgz"])
	require.Equal(t, "sha256:"+hex.EncodeToString(sum[:]), m.Jobs[1].SHA1)
	r, err := Read(out)
	require.NoError(t, err, "sha256 digests verify")
	require.Equal(t, "7.1", r.Manifest.Version)
	dir := t.TempDir()
	golang, _ := r.Package("golang")
	require.NoError(t, golang.Extract(dir))

	// The next dev version follows dev_releases/ and releases/ like `bosh create-release`.
	require.NoError(t, os.MkdirAll(filepath.Join(repo, "dev_releases", "fixture"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(repo, "dev_releases", "fixture", "index.yml"), []byte(`
builds:
  a: {version: "0+dev.4"}
  b: {version: "0+dev.11"}
  c: {version: "2+dev.1"}
format-version: "2"
`), 0o644))
	_, m = build(t, repo, BuildOptions{})
	require.Equal(t, "0+dev.12", m.Version)
	require.NoError(t, os.MkdirAll(filepath.Join(repo, "releases", "fixture"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(repo, "releases", "fixture", "index.yml"), []byte(`
builds:
  x: {version: "10"}
  y: {version: "2"}
`), 0o644))
	_, m = build(t, repo, BuildOptions{})
	require.Equal(t, "10+dev.1", m.Version)
}

func TestBuildErrors(t *testing.T) {
	cases := []struct {
		name    string
		mutate  func(t *testing.T, repo string)
		wantErr string
	}{
		{name: "missing monit", mutate: func(t *testing.T, repo string) {
			require.NoError(t, os.Remove(filepath.Join(repo, "jobs", "server", "monit")))
		}, wantErr: "job 'server' is missing its monit file"},
		{name: "missing template", mutate: func(t *testing.T, repo string) {
			require.NoError(t, os.Remove(filepath.Join(repo, "jobs", "server", "templates", "bin", "ctl.erb")))
		}, wantErr: "job 'server' is missing template 'bin/ctl.erb'"},
		{name: "glob matches nothing", mutate: func(t *testing.T, repo string) {
			writeSpec(t, repo, "app", "name: app\ndependencies: [golang]\nfiles: [app/**/*.go, nothing/**/*.c]\n")
		}, wantErr: "package 'app': files pattern 'nothing/**/*.c' matches no file in src/ or blobs/"},
		{name: "dependency cycle", mutate: func(t *testing.T, repo string) {
			writeSpec(t, repo, "golang", "name: golang\ndependencies: [app]\nfiles: [golang/*.txt]\n")
		}, wantErr: "package dependency cycle: app -> golang -> app"},
		{name: "unknown dependency", mutate: func(t *testing.T, repo string) {
			writeSpec(t, repo, "golang", "name: golang\ndependencies: [libc]\nfiles: [golang/*.txt]\n")
		}, wantErr: "package 'golang' depends on unknown package 'libc'"},
		{name: "job needs a package the release lacks", mutate: func(t *testing.T, repo string) {
			require.NoError(t, os.RemoveAll(filepath.Join(repo, "packages", "app")))
		}, wantErr: "job 'server' needs package 'app', which the release does not have"},
		{name: "blob digest differs from blobs.yml", mutate: func(t *testing.T, repo string) {
			require.NoError(t, os.WriteFile(filepath.Join(repo, "blobs", "golang", "toolchain.txt"), []byte("tampered\n"), 0o644))
		}, wantErr: "blob 'golang/toolchain.txt': digest mismatch"},
		{name: "blob neither in blobs/ nor in the blobstore", mutate: func(t *testing.T, repo string) {
			require.NoError(t, os.RemoveAll(filepath.Join(repo, "blobs")))
		}, wantErr: "package 'golang': open /nonexistent/blobstore/0f1e2d3c-0000-4000-8000-000000000001"},
		{name: "missing packaging", mutate: func(t *testing.T, repo string) {
			require.NoError(t, os.Remove(filepath.Join(repo, "packages", "golang", "packaging")))
		}, wantErr: "package 'golang': missing packaging script"},
		{name: "files include packaging", mutate: func(t *testing.T, repo string) {
			require.NoError(t, os.WriteFile(filepath.Join(repo, "src", "packaging"), []byte("x"), 0o644))
			writeSpec(t, repo, "app", "name: app\ndependencies: [golang]\nfiles: [app/*.go, packaging]\n")
		}, wantErr: "package 'app': its 'files' must not include a file named 'packaging'"},
		{name: "pre_packaging", mutate: func(t *testing.T, repo string) {
			require.NoError(t, os.WriteFile(filepath.Join(repo, "packages", "app", "pre_packaging"), []byte("true\n"), 0o644))
		}, wantErr: "package 'app': pre_packaging scripts are not supported"},
		{name: "no name", mutate: func(t *testing.T, repo string) {
			require.NoError(t, os.Remove(filepath.Join(repo, "config", "final.yml")))
		}, wantErr: "no release name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			repo := fixture(t)
			tc.mutate(t, repo)
			out := filepath.Join(t.TempDir(), "r.tgz")
			_, err := Build(repo, out, BuildOptions{})
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.wantErr)
			_, statErr := os.Stat(out)
			require.True(t, errors.Is(statErr, fs.ErrNotExist), "no tarball on failure")
		})
	}
}

func writeSpec(t *testing.T, repo, pkg, spec string) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(repo, "packages", pkg, "spec"), []byte(spec), 0o644))
}

// rewrite rebuilds a release tarball after edit changes its files (name -> content; nil content removes it).
func rewrite(t *testing.T, in string, edit func(files map[string][]byte)) string {
	t.Helper()
	data, err := os.ReadFile(in)
	require.NoError(t, err)
	files, _ := tgzEntries(t, data)
	edit(files)
	for n, b := range files {
		if b == nil {
			delete(files, n)
		}
	}
	out := filepath.Join(t.TempDir(), "rewritten.tgz")
	require.NoError(t, os.WriteFile(out, writeTgz(t, files), 0o644))
	return out
}

// replaceJob swaps a job archive and updates its digest in release.MF, so only the archive's content is wrong.
func replaceJob(t *testing.T, files map[string][]byte, job string, edit func(inner map[string][]byte)) {
	inner, _ := tgzEntries(t, files["./jobs/"+job+".tgz"])
	edit(inner)
	for n, b := range inner {
		if b == nil {
			delete(inner, n)
		}
	}
	newTgz := writeTgz(t, inner)
	oldSum := sha1hex(files["./jobs/"+job+".tgz"])
	files["./jobs/"+job+".tgz"] = newTgz
	files["./release.MF"] = []byte(strings.Replace(string(files["./release.MF"]), oldSum, sha1hex(newTgz), 1))
}

func TestReadRejects(t *testing.T) {
	good, _ := build(t, fixture(t), BuildOptions{})
	cases := []struct {
		name    string
		edit    func(t *testing.T, files map[string][]byte)
		wantErr string
	}{
		{name: "job without monit", edit: func(t *testing.T, files map[string][]byte) {
			replaceJob(t, files, "server", func(inner map[string][]byte) { inner["./monit"] = nil })
		}, wantErr: "job 'server' is missing its monit file"},
		{name: "job without a listed template", edit: func(t *testing.T, files map[string][]byte) {
			replaceJob(t, files, "server", func(inner map[string][]byte) { inner["./templates/config.json.erb"] = nil })
		}, wantErr: "job 'server' is missing template 'config.json.erb'"},
		{name: "template destination outside the job directory", edit: func(t *testing.T, files map[string][]byte) {
			replaceJob(t, files, "server", func(inner map[string][]byte) {
				inner["./job.MF"] = []byte(strings.Replace(string(inner["./job.MF"]), "config/config.json", "../../../etc/cron.d/x", 1))
			})
		}, wantErr: `destination "../../../etc/cron.d/x" leaves the job's directory`},
		{name: "absolute template destination", edit: func(t *testing.T, files map[string][]byte) {
			replaceJob(t, files, "server", func(inner map[string][]byte) {
				inner["./job.MF"] = []byte(strings.Replace(string(inner["./job.MF"]), "config/config.json", "/etc/passwd", 1))
			})
		}, wantErr: `destination "/etc/passwd" leaves the job's directory`},
		{name: "job digest mismatch", edit: func(t *testing.T, files map[string][]byte) {
			inner, _ := tgzEntries(t, files["./jobs/client.tgz"])
			inner["./monit"] = []byte("tampered")
			files["./jobs/client.tgz"] = writeTgz(t, inner)
		}, wantErr: "job 'client': digest mismatch: release.MF says"},
		{name: "package digest mismatch", edit: func(t *testing.T, files map[string][]byte) {
			files["./packages/golang.tgz"] = append(files["./packages/golang.tgz"], 0)
		}, wantErr: "package 'golang': digest mismatch"},
		{name: "sha256 digest mismatch", edit: func(t *testing.T, files map[string][]byte) {
			m, err := ParseManifest(files["./release.MF"])
			require.NoError(t, err)
			files["./release.MF"] = []byte(strings.Replace(string(files["./release.MF"]), m.Packages[0].SHA1,
				"sha256:"+strings.Repeat("0", 64), 1))
		}, wantErr: "package 'app': digest mismatch: release.MF says sha256:0000"},
		{name: "missing package archive", edit: func(t *testing.T, files map[string][]byte) {
			files["./packages/app.tgz"] = nil
		}, wantErr: "package 'app': packages/app.tgz is missing"},
		{name: "missing job archive", edit: func(t *testing.T, files map[string][]byte) {
			files["./jobs/client.tgz"] = nil
		}, wantErr: "job 'client': jobs/client.tgz is missing"},
		{name: "dependency cycle in release.MF", edit: func(t *testing.T, files map[string][]byte) {
			files["./release.MF"] = []byte(strings.Replace(string(files["./release.MF"]),
				"dependencies: []", "dependencies: [app]", 1))
		}, wantErr: "package dependency cycle"},
		{name: "no release.MF", edit: func(t *testing.T, files map[string][]byte) {
			files["./release.MF"] = nil
		}, wantErr: "no release.MF"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bad := rewrite(t, good, func(files map[string][]byte) { tc.edit(t, files) })
			_, err := Read(bad)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.wantErr)
		})
	}
	t.Run("unmodified rewrite still reads", func(t *testing.T) {
		_, err := Read(rewrite(t, good, func(map[string][]byte) {}))
		require.NoError(t, err)
	})
}

// A release tarball corrupted in transit must be refused wherever the damage is. Every byte after the 10-byte
// gzip header (whose MTIME and OS fields carry no data) is flipped in turn; the tar reader alone stops at the
// end-of-archive blocks and missed flips in the tail and in the gzip trailer.
func TestReadRejectsEveryFlippedByte(t *testing.T) {
	good, _ := build(t, fixture(t), BuildOptions{})
	body, err := os.ReadFile(good)
	require.NoError(t, err)
	bad := filepath.Join(t.TempDir(), "bad.tgz")
	for i := 10; i < len(body); i++ {
		c := bytes.Clone(body)
		c[i] ^= 0xff
		require.NoError(t, os.WriteFile(bad, c, 0o644))
		_, err := Read(bad)
		require.Error(t, err, "a flip of byte %d of %d was accepted", i, len(body))
	}
}

func TestTopoOrder(t *testing.T) {
	order, err := TopoOrder(map[string][]string{
		"etcd_ctl": {"golang"}, "golang": nil, "acceptance-tests": {"golang", "etcd_ctl"}, "zlib": {},
	})
	require.NoError(t, err)
	require.Equal(t, []string{"golang", "etcd_ctl", "acceptance-tests", "zlib"}, order)

	_, err = TopoOrder(map[string][]string{"a": {"b"}, "b": {"c"}, "c": {"a"}})
	var cyc *CycleError
	require.True(t, errors.As(err, &cyc))
	require.Equal(t, "package dependency cycle: a -> b -> c -> a", err.Error())
	_, err = TopoOrder(map[string][]string{"a": {"a"}})
	require.EqualError(t, err, "package dependency cycle: a -> a")
}

func TestMatchGlob(t *testing.T) {
	cases := []struct {
		pattern, name string
		want          bool
	}{
		{"app/**/*.go", "app/main.go", true},
		{"app/**/*.go", "app/a/b/c.go", true},
		{"app/**/*.go", "app/a/b/c.txt", false},
		{"app/*", "app/a/b", false},
		{"app/**", "app/a/b", true},
		{"golang/*.tar.gz", "golang/go1.26.linux-amd64.tar.gz", true},
		{"golang/*.tar.gz", "golang/x/go.tar.gz", false},
		{"**/*.md", "README.md", true},
		{"a/[bc]/x", "a/c/x", true},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, matchGlob(tc.pattern, tc.name), "%s ~ %s", tc.pattern, tc.name)
	}
}

func TestParseManifestRubyBinaryTags(t *testing.T) {
	m, err := ParseManifest([]byte(`---
name: old
version: "12"
commit_hash: abc
uncommitted_changes: false
jobs:
- name: j
  version: !binary |-
    ZmZm
  fingerprint: !binary |-
    ZmZm
  sha1: !binary |-
    MDEyMw==
packages: []
`))
	require.NoError(t, err)
	require.Equal(t, JobRef{Name: "j", Version: "fff", Fingerprint: "fff", SHA1: "0123"}, m.Jobs[0])
	_, err = ParseManifest([]byte("name: x\nversion: 1\ncompiled_packages: [{name: a}]\n"))
	require.ErrorContains(t, err, "compiled releases are not supported")
}

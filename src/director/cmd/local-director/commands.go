package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/etcd-release/etcd-release/src/director/api"
	"github.com/etcd-release/etcd-release/src/director/client"
	"github.com/etcd-release/etcd-release/src/director/vars"
	"github.com/etcd-release/etcd-release/src/releasetools/devrelease"
	"github.com/etcd-release/etcd-release/src/releasetools/opsfile"
)

// clientOptions locate and authenticate against a director; defaults come from the state dir serve writes.
type clientOptions struct {
	url      string
	stateDir string
	caCert   string
	user     string
	password string
}

func (o *clientOptions) bind(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVar(&o.url, "director", envOr("LOCAL_DIRECTOR_URL", "https://127.0.0.1:25555"), "director URL")
	f.StringVar(&o.stateDir, "state-dir", ".cache/local-director", "state dir of the director (for its CA certificate and credentials)")
	f.StringVar(&o.caCert, "ca-cert", os.Getenv("LOCAL_DIRECTOR_CA_CERT"), "director CA certificate (default: <state-dir>/director-ca.crt)")
	f.StringVar(&o.user, "user", os.Getenv("LOCAL_DIRECTOR_USER"), "basic auth user (default: <state-dir>/creds.json)")
	f.StringVar(&o.password, "password", os.Getenv("LOCAL_DIRECTOR_PASSWORD"), "basic auth password")
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func (o *clientOptions) client() (*client.Client, error) {
	caPath := o.caCert
	if caPath == "" {
		caPath = api.TLSPaths(o.stateDir).CACert
	}
	ca, err := os.ReadFile(caPath)
	if err != nil {
		return nil, fmt.Errorf("reading the director's CA certificate (is the director running? see --state-dir, --ca-cert): %w", err)
	}
	user, password := o.user, o.password
	if user == "" || password == "" {
		b, err := os.ReadFile(filepath.Join(o.stateDir, "creds.json"))
		if err != nil {
			return nil, fmt.Errorf("no credentials: pass --user/--password or --state-dir with creds.json: %w", err)
		}
		var c api.Credentials
		if err := json.Unmarshal(b, &c); err != nil {
			return nil, err
		}
		user, password = c.User, c.Password
	}
	return client.New(o.url, ca, user, password)
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
}

// runTask starts a task with start and streams its events until it ends.
func runTask(o *clientOptions, start func(ctx context.Context, c *client.Client) (int, error)) (*client.Client, client.Task, error) {
	c, err := o.client()
	if err != nil {
		return nil, client.Task{}, err
	}
	ctx, cancel := signalContext()
	defer cancel()
	id, err := start(ctx, c)
	if err != nil {
		return c, client.Task{}, err
	}
	fmt.Printf("Task %d\n", id)
	t, err := c.Wait(ctx, id, os.Stdout)
	if err == nil {
		fmt.Printf("Task %d done\n", id)
	}
	return c, t, err
}

type errandExitError struct {
	errand string
	code   int
}

func (e *errandExitError) Error() string {
	return fmt.Sprintf("errand '%s' exited with code %d", e.errand, e.code)
}

// addClientCommands adds the client commands; each talks to a running director through the director API only.
func addClientCommands(root *cobra.Command) {
	o := &clientOptions{}
	o.bind(root)
	root.AddCommand(newUploadStemcellCommand(o), newUploadReleaseCommand(o), newUpdateCloudConfigCommand(o),
		newDeployCommand(o), newInstancesCommand(o), newRunErrandCommand(o), newDeleteDeploymentCommand(o), newTaskCommand(o))
	root.AddCommand(newStateCommands(o)...)
}

// deploymentFlag binds -d/--deployment; required makes cobra reject the command without it.
func deploymentFlag(cmd *cobra.Command, deployment *string, required bool) {
	cmd.Flags().StringVarP(deployment, "deployment", "d", "", "deployment name")
	if required {
		_ = cmd.MarkFlagRequired("deployment")
	}
}

func newUploadStemcellCommand(o *clientOptions) *cobra.Command {
	var scName, scVersion, scOS string
	cmd := &cobra.Command{
		Use:   "upload-stemcell",
		Short: "Create a light stemcell (stemcell.MF + empty image) and upload it",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			dir, err := os.MkdirTemp("", "stemcell-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			path := filepath.Join(dir, "stemcell.tgz")
			if err := client.WriteLightStemcell(path, scName, scVersion, scOS); err != nil {
				return err
			}
			_, _, err = runTask(o, func(ctx context.Context, c *client.Client) (int, error) { return c.UploadStemcell(ctx, path) })
			return err
		},
	}
	cmd.Flags().StringVar(&scName, "name", "bosh-local-ubuntu-jammy-go_agent", "stemcell name")
	cmd.Flags().StringVar(&scVersion, "version", "1.0", "stemcell version")
	cmd.Flags().StringVar(&scOS, "os", "ubuntu-jammy", "stemcell operating system (what manifests' stemcells.os names)")
	return cmd
}

func newUploadReleaseCommand(o *clientOptions) *cobra.Command {
	var repo string
	cmd := &cobra.Command{
		Use:   "upload-release [TARBALL]",
		Short: "Upload a release tarball; without one, build this repository's dev release (blobs + release.Build) and upload it",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			path := ""
			if len(args) == 1 {
				path = args[0]
			} else {
				ctx, cancel := signalContext()
				defer cancel()
				p, m, err := devrelease.Create(ctx, repo, devrelease.Options{})
				if err != nil {
					return err
				}
				fmt.Printf("Built release %s/%s: %s\n", m.Name, m.Version, p)
				path = p
			}
			_, _, err := runTask(o, func(ctx context.Context, c *client.Client) (int, error) { return c.UploadRelease(ctx, path) })
			return err
		},
	}
	cmd.Flags().StringVar(&repo, "repo", ".", "release repository to build when no tarball is given")
	return cmd
}

func newUpdateCloudConfigCommand(o *clientOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "update-cloud-config FILE",
		Short: "Replace the cloud config",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			b, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			ctx, cancel := signalContext()
			defer cancel()
			if err := c.UpdateCloudConfig(ctx, b); err != nil {
				return err
			}
			fmt.Println("Cloud config updated")
			return nil
		},
	}
}

// manifestInput is what `deploy` builds the manifest from.
type manifestInput struct {
	deployment                 string
	varFiles, varKVs, opsFiles []string
}

// build reads the manifest at path and, as the bosh CLI does, applies the ops files first and then the
// variables (ops files may introduce ((vars)) of their own). The manifest's name must match -d when given.
func (in *manifestInput) build(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if raw, err = opsfile.ApplyToYAML(raw, in.opsFiles); err != nil {
		return nil, err
	}
	v := vars.Vars{}
	for _, f := range in.varFiles {
		if err := v.LoadFile(f); err != nil {
			return nil, err
		}
	}
	for _, kv := range in.varKVs {
		if err := v.Set(kv); err != nil {
			return nil, err
		}
	}
	manifest, err := vars.Interpolate(raw, v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var probe struct {
		Name string `yaml:"name"`
	}
	if err := yaml.Unmarshal(manifest, &probe); err != nil {
		return nil, err
	}
	if in.deployment != "" && probe.Name != in.deployment {
		return nil, fmt.Errorf("-d %s does not match the manifest's name '%s'", in.deployment, probe.Name)
	}
	return manifest, nil
}

func newDeployCommand(o *clientOptions) *cobra.Command {
	var in manifestInput
	cmd := &cobra.Command{
		Use:   "deploy -d NAME MANIFEST",
		Short: "Apply -o ops files, interpolate ((vars)) from -l files and -v values, then deploy the manifest",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			manifest, err := in.build(args[0])
			if err != nil {
				return err
			}
			_, _, err = runTask(o, func(ctx context.Context, c *client.Client) (int, error) { return c.Deploy(ctx, manifest) })
			return err
		},
	}
	cmd.Flags().StringArrayVarP(&in.varFiles, "vars-file", "l", nil, "YAML file of variables (repeatable)")
	cmd.Flags().StringArrayVarP(&in.varKVs, "var", "v", nil, "variable as name=value (repeatable)")
	cmd.Flags().StringArrayVarP(&in.opsFiles, "ops-file", "o", nil, "bosh ops file applied to the manifest before interpolation (repeatable, in order)")
	deploymentFlag(cmd, &in.deployment, false)
	return cmd
}

func newInstancesCommand(o *clientOptions) *cobra.Command {
	var deployment string
	cmd := &cobra.Command{
		Use:   "instances -d NAME",
		Short: "List a deployment's instances with their process state",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			ctx, cancel := signalContext()
			defer cancel()
			id, err := c.Instances(ctx, deployment)
			if err != nil {
				return err
			}
			if _, err := c.Wait(ctx, id, nil); err != nil {
				return err
			}
			out, err := c.TaskOutput(ctx, id, "result")
			if err != nil {
				return err
			}
			return printInstances(os.Stdout, out)
		},
	}
	deploymentFlag(cmd, &deployment, true)
	return cmd
}

// printInstances prints an instances task result (one JSON object per line) as a table.
func printInstances(w io.Writer, result []byte) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "Instance\tProcess State\tAZ\tIPs\tVM CID\tBootstrap")
	sc := bufio.NewScanner(bytes.NewReader(result))
	for sc.Scan() {
		var i struct {
			JobName   string   `json:"job_name"`
			ID        string   `json:"id"`
			Index     int      `json:"index"`
			JobState  *string  `json:"job_state"`
			AZ        *string  `json:"az"`
			IPs       []string `json:"ips"`
			VMCID     *string  `json:"vm_cid"`
			Bootstrap bool     `json:"bootstrap"`
			State     string   `json:"state"`
		}
		if err := json.Unmarshal(sc.Bytes(), &i); err != nil {
			return err
		}
		js, az, cid := i.State, "-", "-"
		if i.JobState != nil {
			js = *i.JobState
		}
		if i.AZ != nil {
			az = *i.AZ
		}
		if i.VMCID != nil {
			cid = *i.VMCID
		}
		fmt.Fprintf(tw, "%s/%s (%d)\t%s\t%s\t%s\t%s\t%v\n", i.JobName, i.ID, i.Index, js, az, strings.Join(i.IPs, ","), cid, i.Bootstrap)
	}
	return tw.Flush()
}

func newRunErrandCommand(o *clientOptions) *cobra.Command {
	var deployment string
	var keepAlive bool
	cmd := &cobra.Command{
		Use:   "run-errand -d NAME ERRAND",
		Short: "Run an errand and print its output; exits with the errand's exit code",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			c, t, err := runTask(o, func(ctx context.Context, c *client.Client) (int, error) {
				return c.RunErrand(ctx, deployment, args[0], keepAlive)
			})
			if err != nil {
				return err
			}
			out, err := c.TaskOutput(context.Background(), t.ID, "result")
			if err != nil {
				return err
			}
			code, err := printErrandResults(os.Stdout, out)
			if err != nil {
				return err
			}
			if code != 0 {
				return &errandExitError{errand: args[0], code: code}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&keepAlive, "keep-alive", false, "keep the errand VM")
	deploymentFlag(cmd, &deployment, true)
	return cmd
}

// printErrandResults prints an errand task result (one JSON line per instance) and returns the last non-zero
// exit code (0 when every instance succeeded).
func printErrandResults(w io.Writer, result []byte) (int, error) {
	code := 0
	sc := bufio.NewScanner(bytes.NewReader(result))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var r struct {
			Instance struct{ Group, ID string } `json:"instance"`
			ExitCode int                        `json:"exit_code"`
			Stdout   string                     `json:"stdout"`
			Stderr   string                     `json:"stderr"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return 0, err
		}
		fmt.Fprintf(w, "Instance   %s/%s\nExit Code  %d\nStdout     %s\nStderr     %s\n", r.Instance.Group, r.Instance.ID, r.ExitCode, r.Stdout, r.Stderr)
		if r.ExitCode != 0 {
			code = r.ExitCode
		}
	}
	return code, nil
}

func newDeleteDeploymentCommand(o *clientOptions) *cobra.Command {
	var deployment string
	var force bool
	cmd := &cobra.Command{
		Use:   "delete-deployment -d NAME",
		Short: "Delete a deployment: every VM; its persistent disks are orphaned (bosh disks --orphaned, bosh delete-disk)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, _, err := runTask(o, func(ctx context.Context, c *client.Client) (int, error) {
				return c.DeleteDeployment(ctx, deployment, force)
			})
			return err
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "ignore errors")
	deploymentFlag(cmd, &deployment, true)
	return cmd
}

func newTaskCommand(o *clientOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "task N",
		Short: "Follow a task's events until it ends",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			var id int
			if _, err := fmt.Sscan(args[0], &id); err != nil {
				return fmt.Errorf("task id %q: %w", args[0], err)
			}
			_, _, err := runTask(o, func(context.Context, *client.Client) (int, error) { return id, nil })
			return err
		},
	}
}

// newStateCommands makes start, stop (--hard: detached), restart and recreate.
func newStateCommands(o *clientOptions) []*cobra.Command {
	fixed := func(s string) func() string { return func() string { return s } }
	var hard bool
	stop := newStateCommand(o, "stop", "Stop instances (--hard: delete their VMs, keep disks)", func() string {
		if hard {
			return "detached"
		}
		return "stopped"
	})
	stop.Flags().BoolVar(&hard, "hard", false, "delete the VMs (state detached)")
	return []*cobra.Command{
		newStateCommand(o, "start", "Start instances", fixed("started")),
		stop,
		newStateCommand(o, "restart", "Restart instances", fixed("restart")),
		newStateCommand(o, "recreate", "Recreate instances' VMs (disks are kept)", fixed("recreate")),
	}
}

// newStateCommand makes a command that converges the selected instances (GROUP[/INDEX-OR-ID], or all) to the
// state that state() returns when it runs.
func newStateCommand(o *clientOptions, use, short string, state func() string) *cobra.Command {
	var deployment string
	cmd := &cobra.Command{
		Use:   use + " -d NAME [GROUP[/INDEX-OR-ID]]",
		Short: short,
		Args:  cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			target := "*"
			if len(args) == 1 {
				target = args[0]
			}
			_, _, err := runTask(o, func(ctx context.Context, c *client.Client) (int, error) {
				return c.ChangeState(ctx, deployment, target, state())
			})
			return err
		},
	}
	deploymentFlag(cmd, &deployment, true)
	return cmd
}

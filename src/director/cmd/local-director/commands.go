package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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

func addClientCommands(root *cobra.Command) {
	o := &clientOptions{}
	o.bind(root)

	var scName, scVersion, scOS string
	uploadStemcell := &cobra.Command{
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
	uploadStemcell.Flags().StringVar(&scName, "name", "bosh-local-ubuntu-jammy-go_agent", "stemcell name")
	uploadStemcell.Flags().StringVar(&scVersion, "version", "1.0", "stemcell version")
	uploadStemcell.Flags().StringVar(&scOS, "os", "ubuntu-jammy", "stemcell operating system (what manifests' stemcells.os names)")

	var repo string
	uploadRelease := &cobra.Command{
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
	uploadRelease.Flags().StringVar(&repo, "repo", ".", "release repository to build when no tarball is given")

	updateCloudConfig := &cobra.Command{
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

	var deployment string
	var varFiles, varKVs, opsFiles []string
	deploy := &cobra.Command{
		Use:   "deploy -d NAME MANIFEST",
		Short: "Apply -o ops files, interpolate ((vars)) from -l files and -v values, then deploy the manifest",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			raw, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			// As the bosh CLI: ops files first, then variables (ops files may introduce ((vars)) of their own).
			if raw, err = opsfile.ApplyToYAML(raw, opsFiles); err != nil {
				return err
			}
			v := vars.Vars{}
			for _, f := range varFiles {
				if err := v.LoadFile(f); err != nil {
					return err
				}
			}
			for _, kv := range varKVs {
				if err := v.Set(kv); err != nil {
					return err
				}
			}
			manifest, err := vars.Interpolate(raw, v)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			var probe struct {
				Name string `yaml:"name"`
			}
			if err := yaml.Unmarshal(manifest, &probe); err != nil {
				return err
			}
			if deployment != "" && probe.Name != deployment {
				return fmt.Errorf("-d %s does not match the manifest's name '%s'", deployment, probe.Name)
			}
			_, _, err = runTask(o, func(ctx context.Context, c *client.Client) (int, error) { return c.Deploy(ctx, manifest) })
			return err
		},
	}
	deploy.Flags().StringArrayVarP(&varFiles, "vars-file", "l", nil, "YAML file of variables (repeatable)")
	deploy.Flags().StringArrayVarP(&varKVs, "var", "v", nil, "variable as name=value (repeatable)")
	deploy.Flags().StringArrayVarP(&opsFiles, "ops-file", "o", nil, "bosh ops file applied to the manifest before interpolation (repeatable, in order)")

	instances := &cobra.Command{
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
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "Instance\tProcess State\tAZ\tIPs\tVM CID\tBootstrap")
			sc := bufio.NewScanner(bytes.NewReader(out))
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
		},
	}

	var keepAlive bool
	runErrand := &cobra.Command{
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
			code := 0
			sc := bufio.NewScanner(bytes.NewReader(out))
			sc.Buffer(make([]byte, 1<<20), 16<<20)
			for sc.Scan() {
				var r struct {
					Instance struct{ Group, ID string } `json:"instance"`
					ExitCode int                        `json:"exit_code"`
					Stdout   string                     `json:"stdout"`
					Stderr   string                     `json:"stderr"`
				}
				if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
					return err
				}
				fmt.Printf("Instance   %s/%s\nExit Code  %d\nStdout     %s\nStderr     %s\n", r.Instance.Group, r.Instance.ID, r.ExitCode, r.Stdout, r.Stderr)
				if r.ExitCode != 0 {
					code = r.ExitCode
				}
			}
			if code != 0 {
				return &errandExitError{errand: args[0], code: code}
			}
			return nil
		},
	}
	runErrand.Flags().BoolVar(&keepAlive, "keep-alive", false, "keep the errand VM")

	var force bool
	deleteDeployment := &cobra.Command{
		Use:   "delete-deployment -d NAME",
		Short: "Delete a deployment: every VM and persistent disk",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, _, err := runTask(o, func(ctx context.Context, c *client.Client) (int, error) {
				return c.DeleteDeployment(ctx, deployment, force)
			})
			return err
		},
	}
	deleteDeployment.Flags().BoolVar(&force, "force", false, "ignore errors")

	var stateTarget string
	changeState := func(use, state, short string) *cobra.Command {
		return &cobra.Command{
			Use:   use + " -d NAME [GROUP[/INDEX-OR-ID]]",
			Short: short,
			Args:  cobra.MaximumNArgs(1),
			RunE: func(_ *cobra.Command, args []string) error {
				stateTarget = "*"
				if len(args) == 1 {
					stateTarget = args[0]
				}
				_, _, err := runTask(o, func(ctx context.Context, c *client.Client) (int, error) {
					return c.ChangeState(ctx, deployment, stateTarget, state)
				})
				return err
			},
		}
	}

	task := &cobra.Command{
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

	for _, cmd := range []*cobra.Command{deploy, instances, runErrand, deleteDeployment} {
		cmd.Flags().StringVarP(&deployment, "deployment", "d", "", "deployment name")
	}
	for _, cmd := range []*cobra.Command{instances, runErrand, deleteDeployment} {
		_ = cmd.MarkFlagRequired("deployment")
	}
	stateCmds := []*cobra.Command{
		changeState("start", "started", "Start instances"),
		changeState("stop", "stopped", "Stop instances (--hard: delete their VMs, keep disks)"),
		changeState("restart", "restart", "Restart instances"),
		changeState("recreate", "recreate", "Recreate instances' VMs (disks are kept)"),
	}
	var hard bool
	stateCmds[1].Flags().BoolVar(&hard, "hard", false, "delete the VMs (state detached)")
	stop := stateCmds[1]
	stopRun := stop.RunE
	stop.RunE = func(cmd *cobra.Command, args []string) error {
		if !hard {
			return stopRun(cmd, args)
		}
		target := "*"
		if len(args) == 1 {
			target = args[0]
		}
		_, _, err := runTask(o, func(ctx context.Context, c *client.Client) (int, error) {
			return c.ChangeState(ctx, deployment, target, "detached")
		})
		return err
	}
	for _, cmd := range stateCmds {
		cmd.Flags().StringVarP(&deployment, "deployment", "d", "", "deployment name")
		_ = cmd.MarkFlagRequired("deployment")
	}
	root.AddCommand(append([]*cobra.Command{uploadStemcell, uploadRelease, updateCloudConfig, deploy, instances, runErrand, deleteDeployment, task}, stateCmds...)...)
}

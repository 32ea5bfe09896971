// Package cli holds etcd_ctl's cobra commands. Each command binds its flags to an options struct in its
// constructor and calls one library function; nothing here decides anything about etcd.
package cli

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/etcd-release/etcd-release/src/etcd_ctl/config"
)

// DefaultConfigPath is where the etcd job renders etcd_ctl's configuration.
const DefaultConfigPath = "/var/vcap/jobs/etcd/config/etcd_ctl.json"

// ExitError carries a specific exit code to main.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode maps an error returned by a command to the process exit code.
func ExitCode(err error) int {
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	if err != nil {
		return 1
	}
	return 0
}

// NewRoot builds the etcd_ctl command tree.
func NewRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "etcd_ctl",
		Short: "Runs and manages one etcd member of a BOSH-deployed etcd cluster",
		Long: `etcd_ctl runs on every etcd VM. It reads the JSON configuration rendered by the etcd job
(` + DefaultConfigPath + `), validates it, decides whether this member creates the cluster, joins it as
a learner or restarts with its data, and supervises an embedded etcd. It also implements the BOSH
lifecycle hooks (pre-start checks, post-start readiness, drain).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newRenderCmd(), newValidateCmd(), newStartCmd(), newStatusCmd(), newCertsCmd(), newWaitReadyCmd(), newPreStopCmd(), newDrainCmd(), newCompactCmd(), newDefragCmd())
	root.AddCommand(newSnapshotCmd(), newSealSnapshotCmd(), newRestoreCmd(), newRecoverFromSurvivorCmd())
	return root
}

func addConfigFlag(cmd *cobra.Command, path *string) {
	cmd.Flags().StringVar(path, "config", DefaultConfigPath, "path of the JSON configuration rendered by the etcd job")
}

// newLogger returns a JSON zap logger on stderr.
func newLogger(debug bool) *zap.Logger {
	level := zapcore.InfoLevel
	if debug {
		level = zapcore.DebugLevel
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(os.Stderr), level)
	// Sample repeated messages as etcd's own default logger does, so a burst of identical warnings (e.g. slow
	// request stats under load) cannot slow the server down; distinct decision lines are never dropped.
	core = zapcore.NewSamplerWithOptions(core, time.Second, 100, 100)
	return zap.New(core).Named("etcd_ctl")
}

// signalContext is cancelled on SIGTERM or SIGINT.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
}

func loadConfig(path string) (*config.Config, error) {
	return config.Load(path)
}

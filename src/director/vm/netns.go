package vm

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// netnsDir is where `ip netns add` pins named network namespaces.
const netnsDir = "/run/netns"

// dialInNetns opens a connection whose socket is created inside the network namespace pinned at nsPath,
// so "127.0.0.1" means the VM's loopback. The socket is created on an OS thread locked to this goroutine
// that joins the namespace and goes back to its own namespace right after; a socket stays in the
// namespace it was created in, so the returned conn works from any goroutine. If the thread cannot go
// back, it stays locked and the runtime retires it when the goroutine ends.
func dialInNetns(ctx context.Context, nsPath, network, addr string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		conn, err, restored := dialOnLockedThread(ctx, nsPath, network, addr)
		if restored {
			runtime.UnlockOSThread()
		}
		ch <- result{conn: conn, err: err}
	}()
	select {
	case r := <-ch:
		return r.conn, r.err
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.conn != nil {
				r.conn.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

func dialOnLockedThread(ctx context.Context, nsPath, network, addr string) (conn net.Conn, err error, restored bool) {
	self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
	orig, err := os.Open(self)
	if err != nil {
		return nil, fmt.Errorf("opening own network namespace: %w", err), true
	}
	defer orig.Close()
	target, err := os.Open(nsPath)
	if err != nil {
		return nil, fmt.Errorf("opening network namespace: %w", err), true
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return nil, fmt.Errorf("entering network namespace %s: %w", nsPath, err), true
	}
	var d net.Dialer
	conn, err = d.DialContext(ctx, network, addr)
	restored = unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil
	return conn, err, restored
}

// nsInode identifies a namespace file (device and inode), to compare /proc/<pid>/ns/net with a pinned one.
type nsInode struct{ dev, ino uint64 }

func statNS(path string) (nsInode, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return nsInode{}, err
	}
	return nsInode{dev: uint64(st.Dev), ino: st.Ino}, nil
}

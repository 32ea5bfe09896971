package backup

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// IdleScheduling puts every thread of this process under SCHED_IDLE (and nice 19, where that policy is not
// allowed), so the process runs only on CPU time nothing else wants. Threads the Go runtime starts later
// are cloned from these and inherit it. The snapshot seal child runs like this: hashing, verifying and
// compressing a GiB then never takes CPU from the etcd member serving clients beside it.
//
// It has to be a process of its own: inside etcd_ctl's own process, a low-priority thread would keep one of
// the Go runtime's Ps while the kernel ran it last, and the embedded etcd's goroutines would wait for it.
func IdleScheduling() error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	var first error
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetAttr(tid, &unix.SchedAttr{Policy: unix.SCHED_IDLE}, 0); err != nil {
			_ = unix.Setpriority(unix.PRIO_PROCESS, tid, 19)
			if first == nil {
				first = err
			}
		}
	}
	return first
}

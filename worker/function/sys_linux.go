package function

import "syscall"

// sysProcAttr makes the kernel SIGKILL a function process when the worker
// dies without stopping it (SIGKILL, OOM kill): no orphan keeps running
// with no one to talk to. Linux delivers it when the thread that started
// the child exits; Go keeps its threads unless a goroutine exits while
// locked to one (runtime.LockOSThread), which this package never does, so
// in practice that is the worker's death.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

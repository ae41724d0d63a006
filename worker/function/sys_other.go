//go:build !linux

package function

import "syscall"

// sysProcAttr: only Linux can tie a child's life to its parent's; elsewhere
// a worker that dies without stopping its function processes leaves them
// running until they notice their socket is gone.
func sysProcAttr() *syscall.SysProcAttr { return nil }

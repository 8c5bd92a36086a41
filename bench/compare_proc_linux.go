//go:build linux

package bench

import "syscall"

// childProcAttr gives a child its own process group and has the kernel kill
// it should the runner die without stopping it.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

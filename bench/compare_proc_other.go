//go:build unix && !linux

package bench

import "syscall"

// childProcAttr gives a child its own process group.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

package bench

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// ReadMachineInfo describes this machine from /proc and the tools on it.
// Fields it cannot learn stay empty; it never fails. nginx is the binary
// whose version to report ("" to leave it out); root is the module root,
// whose git commit names the mcpgw measured.
func ReadMachineInfo(ctx context.Context, nginx, root string) MachineInfo {
	m := MachineInfo{
		CPU:        cpuModel(),
		Cores:      runtime.NumCPU(),
		Kernel:     strings.TrimSpace(readSmallFile("/proc/sys/kernel/osrelease")),
		GoVersion:  runtime.Version(),
		LoadBefore: LoadAverage(),
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if nginx != "" {
		// nginx -v writes "nginx version: nginx/1.22.1" to stderr.
		out, err := exec.CommandContext(ctx, nginx, "-v").CombinedOutput()
		if err == nil {
			m.Nginx = strings.TrimPrefix(strings.TrimSpace(string(out)), "nginx version: ")
		}
	}
	if root != "" {
		cmd := exec.CommandContext(ctx, "git", "describe", "--always", "--dirty", "--abbrev=12")
		cmd.Dir = root
		if out, err := cmd.Output(); err == nil {
			m.Commit = strings.TrimSpace(string(out))
		}
	}
	return m
}

// LoadAverage returns the 1, 5 and 15 minute load averages, as uptime
// shows them, or "" where /proc/loadavg cannot be read.
func LoadAverage() string {
	f := strings.Fields(readSmallFile("/proc/loadavg"))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func cpuModel() string {
	sc := bufio.NewScanner(bytes.NewReader([]byte(readSmallFile("/proc/cpuinfo"))))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func readSmallFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return string(b)
}

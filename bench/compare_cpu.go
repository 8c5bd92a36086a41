package bench

import (
	"context"
	"os"
	"strconv"
	"strings"
	"time"
)

// cpuMeter tells how much CPU processes other than the measured ones (the
// runner, the backend, nginx and mcpgw) used during a measurement, so that
// a result disturbed by someone else's load on the machine can be spotted.
// It sums the CPU time of every other user-space process from /proc rather
// than subtracting the measured processes from the machine's busy time:
// the kernel charges the softirq work of the loopback traffic both to the
// process that triggered it and to /proc/stat's softirq column, so a
// subtraction goes wrong by up to a quarter of the machine. Where there is
// no /proc it reports 0.
type cpuMeter struct {
	pids []int // the processes counted as ours, besides the runner itself
}

// cpuSnapshot holds clock ticks: the machine's total (all CPUs, idle
// included) and, per other process, its own and its reaped children's CPU
// time.
type cpuSnapshot struct {
	total  int64
	others map[int]int64
	ok     bool
}

func (m *cpuMeter) snapshot() cpuSnapshot {
	total, ok := machineTicks(readSmallFile("/proc/stat"))
	if !ok {
		return cpuSnapshot{}
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return cpuSnapshot{}
	}
	ours := map[int]bool{os.Getpid(): true}
	for _, pid := range m.pids {
		ours[pid] = true
	}
	s := cpuSnapshot{total: total, others: make(map[int]int64, len(entries)), ok: true}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || ours[pid] {
			continue
		}
		if t, ok := processTicks(readSmallFile("/proc/" + e.Name() + "/stat")); ok {
			s.others[pid] = t
		}
	}
	return s
}

// otherCores is how many cores' worth of CPU other processes used between
// two snapshots (0 when unknown). A process that started in between counts
// whole; one that ended is counted in its parent's reaped children.
func otherCores(a, b cpuSnapshot, cores int) float64 {
	if !a.ok || !b.ok || b.total <= a.total || cores <= 0 {
		return 0
	}
	var used int64
	for pid, t := range b.others {
		used += max(t-a.others[pid], 0)
	}
	perCPU := float64(b.total-a.total) / float64(cores)
	return float64(used) / perCPU
}

// machineTicks sums the first line of /proc/stat: every tick of every CPU
// (guest time is already counted in user, so it is left out).
func machineTicks(stat string) (total int64, ok bool) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, false
	}
	for i, v := range f[1:] {
		if i >= 8 { // guest and guest_nice
			break
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, false
		}
		total += n
	}
	return total, true
}

// kernelThread is PF_KTHREAD in /proc/PID/stat's flags.
const kernelThread = 0x00200000

// processTicks returns utime+stime+cutime+cstime from a /proc/PID/stat
// line; ok is false when it cannot be read or is a kernel thread (ksoftirqd
// mostly runs the measured processes' own network work). The command name,
// field 2, may hold spaces and parentheses, so fields are counted from the
// last ')'.
func processTicks(stat string) (ticks int64, ok bool) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state); flags is field 9, utime to cstime 14 to 17.
	if len(f) < 15 {
		return 0, false
	}
	if flags, err := strconv.ParseUint(f[6], 10, 64); err != nil || flags&kernelThread != 0 {
		return 0, false
	}
	for _, v := range f[11:15] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, false
		}
		ticks += n
	}
	return ticks, true
}

// childPIDs lists the processes whose parent is pid (nginx's workers).
func childPIDs(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat := readSmallFile("/proc/" + e.Name() + "/stat")
		i := strings.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(stat[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, n)
		}
	}
	return out
}

// awaitQuiet waits, up to limit, until other processes use less than
// maxCores of CPU over a 3-second window. It returns what they used in the
// last window and whether that was quiet.
func awaitQuiet(ctx context.Context, m *cpuMeter, cores int, maxCores float64, limit time.Duration) (float64, bool) {
	deadline := time.Now().Add(limit)
	for {
		a := m.snapshot()
		select {
		case <-ctx.Done():
			return 0, false
		case <-time.After(3 * time.Second):
		}
		used := otherCores(a, m.snapshot(), cores)
		if used < maxCores || !a.ok {
			return used, true
		}
		if time.Now().After(deadline) {
			return used, false
		}
	}
}

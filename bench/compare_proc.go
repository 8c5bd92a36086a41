//go:build unix

package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// child is a process the comparison runner started: a server it measures
// (the mock backend, nginx, mcpgw). Its stdout and stderr go to one log
// file. Methods are for the runner's goroutine only, except alive.
type child struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{} // closed once cmd.Wait returned
	waitErr error         // set before exited is closed
}

// startChild runs bin with args, logging to dir/name.log, in its own process
// group so that stopping it also stops its workers (nginx).
func startChild(dir, name, bin string, args ...string) (*child, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("cannot create the log of %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("cannot start %s (%s): %w", name, bin, err)
	}
	c := &child{name: name, logPath: logPath, cmd: cmd, exited: make(chan struct{})}
	go func() {
		c.waitErr = cmd.Wait()
		f.Close()
		close(c.exited)
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// alive reports whether the process is still running.
func (c *child) alive() bool {
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

// awaitListening waits until addr accepts TCP connections, giving up after
// limit, when ctx ends or when the process exits.
func (c *child) awaitListening(ctx context.Context, addr string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var d net.Dialer
	tick := time.NewTicker(40 * time.Millisecond)
	defer tick.Stop()
	for {
		attempt, stop := context.WithTimeout(ctx, 250*time.Millisecond)
		conn, err := d.DialContext(attempt, "tcp", addr)
		stop()
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-c.exited:
			return fmt.Errorf("%s exited before listening on %s (%v); its log ends:\n%s", c.name, addr, c.waitErr, c.tail(20))
		case <-ctx.Done():
			return fmt.Errorf("%s not listening on %s within %s; its log ends:\n%s", c.name, addr, limit, c.tail(20))
		case <-tick.C:
		}
	}
}

// stop sends SIGTERM to the process group and SIGKILL after grace.
func (c *child) stop(grace time.Duration) {
	if !c.alive() {
		return
	}
	pgid := c.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-c.exited:
		return
	case <-time.After(grace):
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	select {
	case <-c.exited:
	case <-time.After(5 * time.Second):
	}
}

// tail returns the last n lines of the process's log.
func (c *child) tail(n int) string {
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// runTool runs a short command (nginx -t, mcpgw check, nginx -v) and
// returns its combined output; the error includes that output.
func runTool(ctx context.Context, limit time.Duration, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", filepath.Base(bin), strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// loopbackAddrs returns n distinct "127.0.0.1:port" addresses that were free
// a moment ago (all reserved at once, so they differ). Another process may
// still take one before the runner's child binds it; the child then fails
// to start and says so.
func loopbackAddrs(n int) ([]string, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	addrs := make([]string, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("cannot find a free loopback port: %w", err)
		}
		ls = append(ls, l)
		addrs = append(addrs, l.Addr().String())
	}
	return addrs, nil
}

// errChildExited is wrapped when a measured server is found dead.
var errChildExited = errors.New("bench: a measured process exited")

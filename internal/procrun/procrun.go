// Package procrun starts and stops the real processes that mcpgw's
// end-to-end tests, conformance runs and benchmarks drive (the gateway,
// upstream MCP servers, nginx, Node clients): each in its own process group
// on loopback, its output kept in a log file, every wait bounded.
package procrun

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// FreePort returns a loopback TCP port that was free a moment ago. The kernel
// picks it; another process may still take it before the caller binds it, in
// which case the caller's process fails to start and says so in its log.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// FreeAddr returns "127.0.0.1:PORT" for a free port.
func FreeAddr() (string, error) {
	p, err := FreePort()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("127.0.0.1:%d", p), nil
}

// Process is a child process whose stdout and stderr go to one log file.
type Process struct {
	Name    string
	LogPath string

	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
	err  error // set before done is closed

	stopOnce sync.Once
}

// Start runs bin with args, its output appended to dir/NAME.log. The process
// gets its own process group (so Stop also ends its children) and, on Linux,
// dies with the caller. env entries are added to the caller's environment.
func Start(dir, name string, env []string, bin string, args ...string) (*Process, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: opening log: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: starting %s: %w", name, bin, err)
	}
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, log: f, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// Pid is the child's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ExitErr is the process's exit status once Done is closed.
func (p *Process) ExitErr() error {
	<-p.done
	return p.err
}

// Stop sends SIGTERM to the process group, waits up to grace, then sends
// SIGKILL. It reports how long the process took to exit after SIGTERM and
// whether it had to be killed; both are zero if it had already exited or was
// already stopped.
func (p *Process) Stop(grace time.Duration) (took time.Duration, killed bool) {
	p.stopOnce.Do(func() {
		if p.Exited() {
			return
		}
		start := time.Now()
		defer func() { took = time.Since(start) }()
		signalGroup(p.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
			killed = true
			signalGroup(p.cmd.Process.Pid, syscall.SIGKILL)
			select {
			case <-p.done:
			case <-time.After(5 * time.Second):
			}
		}
	})
	return took, killed
}

// Tail returns the last n lines of the process's log.
func (p *Process) Tail(n int) string { return TailFile(p.LogPath, n) }

// TailFile returns the last n lines of a file, or a note saying why it could not.
func TailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// WaitTCP waits until addr accepts a TCP connection. It gives up when ctx is
// done or when p (if not nil) exits first, whichever comes first.
func WaitTCP(ctx context.Context, addr string, p *Process) error {
	var d net.Dialer
	for {
		dctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		c, err := d.DialContext(dctx, "tcp", addr)
		cancel()
		if err == nil {
			c.Close()
			return nil
		}
		var exited <-chan struct{}
		if p != nil {
			exited = p.done
		}
		select {
		case <-exited:
			return fmt.Errorf("%s exited (%v) before listening on %s; log tail:\n%s", p.Name, p.err, addr, p.Tail(30))
		case <-ctx.Done():
			msg := fmt.Sprintf("%s not listening on %s: %v", nameOf(p), addr, ctx.Err())
			if p != nil {
				msg += "; log tail:\n" + p.Tail(30)
			}
			return errors.New(msg)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func nameOf(p *Process) string {
	if p == nil {
		return "server"
	}
	return p.Name
}

// StartListening starts a server process and waits up to timeout for it to
// accept connections on addr; on failure it stops the process.
func StartListening(dir, name, addr string, timeout time.Duration, env []string, bin string, args ...string) (*Process, error) {
	p, err := Start(dir, name, env, bin, args...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := WaitTCP(ctx, addr, p); err != nil {
		p.Stop(5 * time.Second)
		return nil, err
	}
	return p, nil
}

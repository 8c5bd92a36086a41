//go:build packaging

// The packaging test (issue 7, DESIGN.md section 9): builds the .deb and .rpm
// with packaging/build.sh, inspects the .rpm with rpm, scores the unit with
// systemd-analyze, installs the .deb into a copy of a Debian bookworm root
// (debootstrap, cached under .cache/packaging/) first as a chroot, then
// booted with systemd-nspawn, and drives the installed service with
// systemctl, dpkg and a Go SDK MCP client on the host (the container shares
// the host's network); then the same life cycle with the .rpm, through rpm
// in the container.
//
// `make test-packaging` runs it as root after installing debootstrap,
// systemd-container and rpm. Environment: GO_EVERYTHING_BIN (else built
// here), DEBIAN_MIRROR (else the machine's configured bookworm mirror).
package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"debug/elf"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgw/mcpgw/e2e/internal/harness"
	"github.com/mcpgw/mcpgw/internal/procrun"
	"github.com/mcpgw/mcpgw/internal/testpki"
)

// maxExposure is the highest `systemd-analyze security` exposure score the
// unit may have (issue 7).
const maxExposure = 2.0

// bookwormPackages are added to debootstrap's minbase: an init to boot, the
// bus systemctl talks over, procps, which the .deb depends on for /bin/kill
// (ExecReload), and rpm, to run the .rpm's scriptlets too.
var bookwormPackages = []string{"systemd", "systemd-sysv", "dbus", "procps", "rpm"}

const (
	testToken   = "packaging-test-token"
	allowedTool = "test_simple_text"
	deniedTool  = "test_error_handling"
	unitPath    = "/lib/systemd/system/mcpgw.service"
	configPath  = "/etc/mcpgw/mcpgw.yaml"
)

func TestPackaging(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the packaging test boots a container and installs packages: run it as root (make test-packaging)")
	}
	var missing []string
	for _, tool := range []string{"debootstrap", "systemd-nspawn", "nsenter", "rpm", "dpkg-deb", "systemd-analyze", "cp"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("missing %s: make test-packaging installs them (apt-get install debootstrap systemd-container rpm)", strings.Join(missing, ", "))
	}
	root, err := harness.ModuleRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	stopStaleContainers(t)
	tmp := t.TempDir()

	deb, rpm := buildPackages(t, root, tmp)
	t.Run("rpm", func(t *testing.T) { checkRPM(t, root, rpm) })
	t.Run("exposure", func(t *testing.T) {
		out := run(t, 30*time.Second, "systemd-analyze", "security", "--offline=true", filepath.Join(root, "systemd/mcpgw.service"))
		score := exposure(t, out)
		t.Logf("systemd-analyze security --offline=true systemd/mcpgw.service: %.1f", score)
	})

	c := newRoot(t, root, tmp)
	for src, dst := range map[string]string{deb: "root/mcpgw.deb", rpm: "root/mcpgw.rpm"} {
		if err := os.WriteFile(filepath.Join(c.root, dst), readFile(t, src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// An image build: systemctl is there but systemd is not running. The
	// scripts enable the unit and start nothing.
	t.Run("chroot", func(t *testing.T) {
		inChroot := []string{c.root, "/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}
		out := run(t, time.Minute, "chroot", append(inChroot, "dpkg", "-i", "/root/mcpgw.deb")...)
		if strings.Contains(out, "mcpgw:") {
			t.Errorf("dpkg -i in a chroot: the scripts said something:\n%s", out)
		}
		link := filepath.Join(c.root, "etc/systemd/system/multi-user.target.wants/mcpgw.service")
		if target, err := os.Readlink(link); err != nil || target != unitPath {
			t.Errorf("the unit is not enabled in the chroot: %s -> %q, %v", link, target, err)
		}
		run(t, time.Minute, "chroot", append(inChroot, "dpkg", "--purge", "mcpgw")...)
		if _, err := os.Lstat(link); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("dpkg --purge in a chroot left %s: %v", link, err)
		}
	})
	bootContainer(t, c, tmp)
	debVersion := strings.TrimSpace(run(t, 10*time.Second, "dpkg-deb", "--field", deb, "Version"))

	installUnconfigured(t, c, "dpkg -i /root/mcpgw.deb")
	t.Run("files", func(t *testing.T) { checkInstalledFiles(t, c, root) })
	t.Run("user", func(t *testing.T) { checkUser(t, c) })
	t.Run("version", func(t *testing.T) {
		got := strings.TrimSpace(c.sh(t, "mcpgw version"))
		if _, err := os.Stat(filepath.Join(root, ".git")); err != nil {
			// Outside a git checkout there is nothing to stamp.
			if got != "mcpgw devel" || debVersion != "0.0.0~devel-1" {
				t.Errorf("without git: mcpgw version %q, package %q; want mcpgw devel, 0.0.0~devel-1", got, debVersion)
			}
			return
		}
		v, ok := strings.CutPrefix(got, "mcpgw v")
		if !ok {
			t.Fatalf("mcpgw version: got %q, want the module version stamped from git", got)
		}
		if want := debPackageVersion(v); debVersion != want {
			t.Errorf("package version %q, want %q (from the binary's %q)", debVersion, want, got)
		}
	})
	t.Run("verify", func(t *testing.T) {
		stdout, stderr, err := c.exec("systemd-analyze verify " + unitPath)
		if err != nil || stderr != "" || stdout != "" {
			t.Errorf("systemd-analyze verify: err %v, output:\n%s%s", err, stdout, stderr)
		}
		score := exposure(t, c.sh(t, "systemd-analyze security mcpgw.service"))
		t.Logf("systemd-analyze security mcpgw.service (installed, in the container): %.1f", score)
	})

	// A working configuration: the Go SDK everything server on the host,
	// mcpgw on loopback with a dev user allowed one tool.
	upstream := startEverything(t, root, tmp)
	frontPort, adminPort := freePort(t), freePort(t)
	frontend := fmt.Sprintf("http://127.0.0.1:%d/mcp", frontPort)
	config := serviceConfig(frontPort, adminPort, frontend, upstream)
	configure(t, c, config)

	t.Run("mcp", func(t *testing.T) { driveMCP(t, frontend) })
	t.Run("service", func(t *testing.T) {
		c.wantShow(t, "NRestarts=0\nType=notify\nUser=mcpgw\nWatchdogUSec=30s",
			"systemctl show -p Type -p NRestarts -p WatchdogUSec -p User mcpgw | sort")
		checkProcess(t, c)
	})
	// With the filter set to kill rather than fail with EPERM, a call the
	// unit's SystemCallFilter refuses would end the service with SIGSYS.
	t.Run("seccomp-kill", func(t *testing.T) {
		dropIn := filepath.Join(c.root, "etc/systemd/system/mcpgw.service.d/seccomp-kill.conf")
		if err := os.MkdirAll(filepath.Dir(dropIn), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dropIn, []byte("[Service]\nSystemCallErrorNumber=\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		c.sh(t, "systemctl daemon-reload && systemctl restart mcpgw")
		c.wantShow(t, "active", "systemctl is-active mcpgw")
		driveMCP(t, frontend)
		c.sh(t, "systemctl reload mcpgw")
		driveMCP(t, frontend)
		c.sh(t, "systemctl stop mcpgw")
		c.wantShow(t, "ExecMainCode=1\nExecMainStatus=0\nResult=success", "systemctl show -p Result -p ExecMainCode -p ExecMainStatus mcpgw | sort")
		if err := os.Remove(dropIn); err != nil {
			t.Fatal(err)
		}
		c.sh(t, "systemctl daemon-reload && systemctl start mcpgw")
		c.wantShow(t, "active", "systemctl is-active mcpgw")
	})
	t.Run("reload", func(t *testing.T) {
		pid := c.mainPID(t)
		before := strings.Count(c.sh(t, "journalctl -u mcpgw -o cat --no-pager"), `"msg":"configuration reloaded"`)
		c.sh(t, "systemctl reload mcpgw")
		c.wantShow(t, "active", "systemctl is-active mcpgw")
		if got := c.mainPID(t); got != pid {
			t.Errorf("reload replaced the process: MainPID %d, was %d", got, pid)
		}
		waitFor(t, 10*time.Second, "the journal to log the reload", func() bool {
			return strings.Count(c.sh(t, "journalctl -u mcpgw -o cat --no-pager"), `"msg":"configuration reloaded"`) == before+1
		})
		driveMCP(t, frontend)
	})
	t.Run("upgrade", func(t *testing.T) { upgradeKeepsConfig(t, c, "dpkg -i /root/mcpgw.deb", config, frontend) })
	// An upgrade whose binary refuses the configuration leaves the running
	// gateway alone and says why.
	t.Run("upgrade-refused", func(t *testing.T) {
		pid := c.mainPID(t)
		path := filepath.Join(c.root, configPath)
		if err := os.WriteFile(path, []byte(config+"unknown_key: 1\n"), 0o640); err != nil {
			t.Fatal(err)
		}
		out := c.sh(t, "dpkg -i /root/mcpgw.deb 2>&1")
		for _, want := range []string{"unknown_key", "was NOT restarted"} {
			if !strings.Contains(out, want) {
				t.Errorf("dpkg -i output lacks %q:\n%s", want, out)
			}
		}
		c.wantShow(t, "active", "systemctl is-active mcpgw")
		if got := c.mainPID(t); got != pid {
			t.Errorf("the refused upgrade restarted the service: MainPID %d, was %d", got, pid)
		}
		if err := os.WriteFile(path, []byte(config), 0o640); err != nil {
			t.Fatal(err)
		}
		driveMCP(t, frontend)
	})
	t.Run("procyon-tls", func(t *testing.T) { checkProcyonTLS(t, c, config, upstream, adminPort) })
	t.Run("remove", func(t *testing.T) {
		c.sh(t, "dpkg -r mcpgw")
		wantRemoved(t, c)
		c.wantShow(t, "kept", "test -f "+configPath+" && echo kept")
		// A reinstall finds the unit disabled by the removal and says so.
		if out := c.sh(t, "dpkg -i /root/mcpgw.deb 2>&1"); !strings.Contains(out, "systemctl enable --now mcpgw") {
			t.Errorf("a reinstall after a removal does not say the unit is disabled:\n%s", out)
		}
		c.wantShow(t, "inactive", "systemctl is-active mcpgw || true")
		c.sh(t, "dpkg -P mcpgw")
		c.wantShow(t, "gone\ngone", "test -e /etc/mcpgw || echo gone; test -e /var/lib/mcpgw || echo gone")
		c.wantShow(t, "mcpgw", "id -un mcpgw")
	})

	// The same life cycle through rpm (in the Debian container: the
	// scriptlets get rpm's arguments, install counts instead of dpkg's
	// actions). --nodeps: this rpm database knows none of Debian's packages.
	const rpmFlags = "--nodeps --force-debian "
	t.Run("rpm-lifecycle", func(t *testing.T) {
		installUnconfigured(t, c, "rpm -i "+rpmFlags+"/root/mcpgw.rpm")
		configure(t, c, config)
		driveMCP(t, frontend)
		upgradeKeepsConfig(t, c, "rpm -U --replacepkgs "+rpmFlags+"/root/mcpgw.rpm", config, frontend)
		c.sh(t, "rpm -e "+rpmFlags+"mcpgw")
		wantRemoved(t, c)
		// rpm keeps an edited %config file beside the package's name.
		c.wantShow(t, "kept", "test -f "+configPath+".rpmsave && echo kept")
	})
}

// serviceConfig is a working configuration: mcpgw on loopback in front of
// upstream, a dev user allowed one tool.
func serviceConfig(port, adminPort int, frontend, upstream string) string {
	return fmt.Sprintf(`server:
  listen: "127.0.0.1:%d"
  admin: {listen: "127.0.0.1:%d"}
identity:
  dev_users:
    - {token: %s, user: alice@example.com, groups: [engineers]}
applications:
  - name: everything
    frontend_url: %s
    upstream_url: %s
    rules:
      - name: engineers
        subjects: {groups: [engineers]}
        tools: [%s]
`, port, adminPort, testToken, frontend, upstream, allowedTool)
}

// installUnconfigured installs a package with the default configuration,
// which fails `mcpgw check`: the unit is enabled but not started, the
// install says why, and a start (as at boot) is skipped, not failed.
func installUnconfigured(t *testing.T, c *container, install string) {
	t.Helper()
	out := c.sh(t, install+" 2>&1")
	t.Logf("%s:\n%s", install, out)
	for _, want := range []string{"does not pass `mcpgw check`", "applications[0].upstream_url: required", "enabled but NOT started"} {
		if !strings.Contains(out, want) {
			t.Errorf("%s: the output lacks %q:\n%s", install, want, out)
		}
	}
	c.wantShow(t, "enabled", "systemctl is-enabled mcpgw")
	c.wantShow(t, "inactive", "systemctl is-active mcpgw || true")
	c.sh(t, "systemctl start mcpgw")
	c.wantShow(t, "inactive", "systemctl is-active mcpgw || true")
	c.wantShow(t, "NRestarts=0\nResult=exec-condition", "systemctl show -p Result -p NRestarts mcpgw | sort")
}

// configure writes a working configuration and starts the service.
func configure(t *testing.T, c *container, config string) {
	t.Helper()
	// Rewriting the file in place keeps its owner and mode.
	if err := os.WriteFile(filepath.Join(c.root, configPath), []byte(config), 0o640); err != nil {
		t.Fatal(err)
	}
	c.sh(t, "runuser -u mcpgw -- mcpgw check >/dev/null && systemctl restart mcpgw")
	c.wantShow(t, "active", "systemctl is-active mcpgw")
}

// upgradeKeepsConfig upgrades the running service: the edited configuration
// stays as it is and the service restarts and serves.
func upgradeKeepsConfig(t *testing.T, c *container, upgrade, config, frontend string) {
	t.Helper()
	pid := c.mainPID(t)
	c.sh(t, upgrade)
	if got := string(readFile(t, filepath.Join(c.root, configPath))); got != config {
		t.Errorf("%s replaced the edited %s:\n%s", upgrade, configPath, got)
	}
	c.wantShow(t, "root:mcpgw 640", "stat -c '%U:%G %a' "+configPath)
	c.wantShow(t, "active", "systemctl is-active mcpgw")
	if got := c.mainPID(t); got == pid {
		t.Errorf("%s did not restart the service (MainPID %d)", upgrade, got)
	}
	driveMCP(t, frontend)
}

// wantRemoved checks that a removal stopped and disabled the service and
// kept its data.
func wantRemoved(t *testing.T, c *container) {
	t.Helper()
	c.wantShow(t, "inactive", "systemctl is-active mcpgw || true")
	c.wantShow(t, "absent", "test -e /etc/systemd/system/multi-user.target.wants/mcpgw.service && echo present || echo absent")
	c.wantShow(t, "kept", "test -f /var/lib/mcpgw/session.key && echo kept")
}

// buildPackages runs packaging/build.sh into dir/dist and returns the .deb
// and the .rpm.
func buildPackages(t *testing.T, root, dir string) (deb, rpm string) {
	t.Helper()
	dist := filepath.Join(dir, "dist")
	cmd := exec.Command(filepath.Join(root, "packaging/build.sh"))
	cmd.Env = append(os.Environ(), "DIST="+dist)
	start := time.Now()
	if out, err := runCmd(cmd, 5*time.Minute); err != nil {
		t.Fatalf("packaging/build.sh: %v\n%s", err, out)
	}
	t.Logf("packages built in %v", time.Since(start).Round(time.Second))
	debs, _ := filepath.Glob(filepath.Join(dist, "mcpgw_*.deb"))
	rpms, _ := filepath.Glob(filepath.Join(dist, "mcpgw-*.rpm"))
	if len(debs) != 1 || len(rpms) != 1 {
		t.Fatalf("dist holds debs %v and rpms %v, want one of each", debs, rpms)
	}
	return debs[0], rpms[0]
}

// checkRPM inspects the .rpm without installing it: header, files with
// their owners, modes and flags, scriptlets and digests.
func checkRPM(t *testing.T, root, pkg string) {
	db := "--dbpath=" + t.TempDir()
	arch := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[runtime.GOARCH]
	info := run(t, 10*time.Second, "rpm", "-qpi", db, pkg)
	for _, want := range []string{"Name        : mcpgw\n", "Release     : 1\n", "Architecture: " + arch + "\n", "Summary     : MCP security gateway.\n"} {
		if !strings.Contains(info, want) {
			t.Errorf("rpm -qpi lacks %q:\n%s", want, info)
		}
	}

	list := strings.Fields(run(t, 10*time.Second, "rpm", "-qpl", db, pkg))
	wantList := []string{"/etc/mcpgw", configPath, "/usr/bin/mcpgw", "/usr/bin/mcpgw-bench", "/usr/lib/systemd/system/mcpgw.service", "/var/lib/mcpgw"}
	if !slices.Equal(list, wantList) {
		t.Errorf("rpm -qpl: got %v, want %v", list, wantList)
	}
	// perms owner group flags path; "cn" is %config(noreplace).
	files := run(t, 10*time.Second, "rpm", "-qp", db, "--qf",
		"[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILEFLAGS:fflags} %{FILENAMES}\n]", pkg)
	wantFiles := `drwxr-x--- root:mcpgw  /etc/mcpgw
-rw-r----- root:mcpgw cn /etc/mcpgw/mcpgw.yaml
-rwxr-xr-x root:root  /usr/bin/mcpgw
-rwxr-xr-x root:root  /usr/bin/mcpgw-bench
-rw-r--r-- root:root  /usr/lib/systemd/system/mcpgw.service
drwxr-x--- mcpgw:mcpgw  /var/lib/mcpgw
`
	if files != wantFiles {
		t.Errorf("rpm files:\n%s\nwant:\n%s", files, wantFiles)
	}

	scripts := run(t, 10*time.Second, "rpm", "-qp", "--scripts", db, pkg)
	for _, s := range []struct{ scriptlet, file string }{
		{"preinstall", "preinstall.sh"},
		{"postinstall", "postinstall.sh"},
		{"preuninstall", "preremove.sh"},
		{"postuninstall", "postremove.sh"},
	} {
		body := strings.TrimRight(string(readFile(t, filepath.Join(root, "packaging/scripts", s.file))), "\n")
		if !strings.Contains(scripts, s.scriptlet+" scriptlet (using /bin/sh):\n"+body) {
			t.Errorf("rpm --scripts: the %s scriptlet is not packaging/scripts/%s", s.scriptlet, s.file)
		}
	}
	if out := run(t, 10*time.Second, "rpm", "-K", "--nosignature", db, pkg); !strings.HasSuffix(out, ": digests OK\n") {
		t.Errorf("rpm -K: %s", out)
	}
}

// checkInstalledFiles checks what the .deb put on disk: owners, modes and the
// contents that come from the repository.
func checkInstalledFiles(t *testing.T, c *container, root string) {
	for path, want := range map[string]string{
		"/usr/bin/mcpgw":       "root:root 755 regular file",
		"/usr/bin/mcpgw-bench": "root:root 755 regular file",
		unitPath:               "root:root 644 regular file",
		"/etc/mcpgw":           "root:mcpgw 750 directory",
		configPath:             "root:mcpgw 640 regular file",
		"/var/lib/mcpgw":       "mcpgw:mcpgw 750 directory",
	} {
		c.wantShow(t, want, "stat -c '%U:%G %a %F' "+path)
	}
	for installed, src := range map[string]string{unitPath: "systemd/mcpgw.service", configPath: "packaging/mcpgw.yaml"} {
		if !bytes.Equal(readFile(t, filepath.Join(c.root, installed)), readFile(t, filepath.Join(root, src))) {
			t.Errorf("%s differs from %s", installed, src)
		}
	}
	c.wantShow(t, "/etc/mcpgw/mcpgw.yaml", "cat /var/lib/dpkg/info/mcpgw.conffiles")
	for _, bin := range []string{"/usr/bin/mcpgw", "/usr/bin/mcpgw-bench"} {
		f, err := elf.Open(filepath.Join(c.root, bin))
		if err != nil {
			t.Fatal(err)
		}
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				t.Errorf("%s is dynamically linked, want static (CGO_ENABLED=0)", bin)
			}
		}
		f.Close()
	}
}

// checkUser checks the mcpgw system user and group.
func checkUser(t *testing.T, c *container) {
	fields := strings.Split(strings.TrimSpace(c.sh(t, "getent passwd mcpgw")), ":")
	if len(fields) != 7 {
		t.Fatalf("getent passwd mcpgw: %q", fields)
	}
	uid, _ := strconv.Atoi(fields[2])
	// System ids are those below UID_MIN, the first one useradd gives a user.
	uidMin, _ := strconv.Atoi(strings.TrimSpace(c.sh(t, "awk '$1 == \"UID_MIN\" { print $2 }' /etc/login.defs")))
	if uid <= 0 || uidMin == 0 || uid >= uidMin {
		t.Errorf("mcpgw uid %d, want a system uid (1..%d)", uid, uidMin-1)
	}
	gid := strings.TrimSpace(c.sh(t, "getent group mcpgw | cut -d: -f3"))
	if fields[3] != gid {
		t.Errorf("mcpgw's primary group %s, want the mcpgw group (%s)", fields[3], gid)
	}
	if fields[5] != "/var/lib/mcpgw" || fields[6] != "/usr/sbin/nologin" {
		t.Errorf("mcpgw home %q shell %q, want /var/lib/mcpgw and /usr/sbin/nologin", fields[5], fields[6])
	}
}

// checkProcess reads the running service's credentials from /proc: the
// mcpgw user, CAP_NET_BIND_SERVICE alone, no new privileges, a seccomp filter.
func checkProcess(t *testing.T, c *container) {
	pid := c.mainPID(t)
	status := c.sh(t, fmt.Sprintf("cat /proc/%d/status", pid))
	uid := strings.TrimSpace(c.sh(t, "id -u mcpgw"))
	const netBindService = "0000000000000400" // 1 << CAP_NET_BIND_SERVICE (10)
	for _, want := range []string{
		"Uid:\t" + strings.Repeat(uid+"\t", 3) + uid + "\n",
		"CapEff:\t" + netBindService + "\n",
		"CapBnd:\t" + netBindService + "\n",
		"CapAmb:\t" + netBindService + "\n",
		"NoNewPrivs:\t1\n",
		"Seccomp:\t2\n",
	} {
		if !strings.Contains(status, want) {
			t.Errorf("/proc/<mcpgw>/status lacks %q:\n%s", want, status)
		}
	}

	// The service's mount namespace: ProtectSystem=strict leaves the tree
	// read-only but for /var/lib/mcpgw; /tmp is its own; /home is hidden.
	mountinfo := c.sh(t, fmt.Sprintf("cat /proc/%d/mountinfo", pid))
	options := map[string]string{} // mount point -> options of the topmost mount
	for _, line := range strings.Split(strings.TrimSpace(mountinfo), "\n") {
		// id parent major:minor root mount-point options ...
		if f := strings.Fields(line); len(f) >= 6 {
			options[f[4]] = f[5]
		}
	}
	for _, m := range []struct{ point, want string }{
		{"/", "ro"}, {"/usr", "ro"}, {"/etc", "ro"}, {"/var/lib/mcpgw", "rw"}, {"/tmp", "rw"}, {"/home", "ro"},
	} {
		opts, ok := options[m.point]
		if !ok && m.point != "/" {
			// Not a mount of its own: it inherits from its parent.
			opts, ok = options[filepath.Dir(m.point)]
		}
		if !ok || !strings.HasPrefix(opts+",", m.want+",") {
			t.Errorf("in the service's mounts %s is %q, want %s", m.point, opts, m.want)
		}
	}
}

// driveMCP connects through the installed gateway as the dev user and checks
// that the policy is in the path: one tool listed and callable, another denied.
func driveMCP(t *testing.T, frontend string) {
	t.Helper()
	driveMCPOver(t, frontend, http.DefaultTransport)
}

// driveMCPOver is driveMCP with the given HTTP transport.
func driveMCPOver(t *testing.T, frontend string, rt http.RoundTripper) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "mcpgw-packaging-test", Version: "1.0.0"}, nil)
	transport := &mcp.StreamableClientTransport{
		Endpoint:   frontend,
		HTTPClient: &http.Client{Transport: withAuthorization{"Bearer " + testToken, rt}},
		MaxRetries: -1,
	}
	cs, err := client.Connect(ctx, transport, nil)
	if err != nil {
		t.Fatalf("initialize through the installed gateway: %v", err)
	}
	defer cs.Close()
	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
	}
	if !slices.Equal(names, []string{allowedTool}) {
		t.Errorf("tools/list: got %v, want only %s (the policy's)", names, allowedTool)
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: allowedTool, Arguments: map[string]any{}})
	if err != nil {
		t.Fatalf("tools/call %s: %v", allowedTool, err)
	}
	if len(res.Content) != 1 || res.IsError {
		t.Fatalf("tools/call %s: got %+v", allowedTool, res)
	}
	if text, ok := res.Content[0].(*mcp.TextContent); !ok || text.Text != "This is a simple text response for testing." {
		t.Errorf("tools/call %s: got %+v", allowedTool, res.Content[0])
	}
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: deniedTool, Arguments: map[string]any{}}); err == nil {
		t.Errorf("tools/call %s (no rule allows it): got a result, want an error", deniedTool)
	}
}

// withAuthorization sets the Authorization header on every request.
type withAuthorization struct {
	value string
	base  http.RoundTripper
}

func (a withAuthorization) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", a.value)
	return a.base.RoundTrip(r)
}

// checkProcyonTLS serves with the PingOne Privilege TLS pair
// (/var/lib/procyon/ssl, read only for the unit) on a port below 1024
// (CAP_NET_BIND_SERVICE): config in the shape of the one given, without a
// tls key, so the loader picks the pair up. It leaves the service running
// with the given config again and no /var/lib/procyon.
func checkProcyonTLS(t *testing.T, c *container, config, upstream string, adminPort int) {
	ca := testpki.NewCA(t)
	certPEM, keyPEM := ca.Issue(t, 2, time.Now().Add(24*time.Hour), "127.0.0.1", "localhost")
	ssl := filepath.Join(c.root, "var/lib/procyon/ssl")
	if err := os.MkdirAll(ssl, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ssl, "mcpgw-cert.pem"), certPEM, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ssl, "mcpgw-key.pem"), keyPEM, 0o640); err != nil {
		t.Fatal(err)
	}
	c.sh(t, "chown -R root:mcpgw /var/lib/procyon/ssl && chmod 0750 /var/lib/procyon/ssl")
	defer func() {
		if err := os.RemoveAll(filepath.Join(c.root, "var/lib/procyon")); err != nil {
			t.Fatal(err)
		}
		configure(t, c, config)
	}()

	port := privilegedPort(t)
	frontend := fmt.Sprintf("https://127.0.0.1:%d/mcp", port)
	configure(t, c, serviceConfig(port, adminPort, frontend, upstream))
	rt := http.DefaultTransport.(*http.Transport).Clone()
	rt.TLSClientConfig = &tls.Config{RootCAs: ca.Pool}
	driveMCPOver(t, frontend, rt)
	if log := c.sh(t, "journalctl -u mcpgw -o cat --no-pager | grep '\"msg\":\"mcpgw serving\"' | tail -1"); !strings.Contains(log, `"tls":true`) {
		t.Errorf("the service does not say it serves TLS: %s", log)
	}
}

// privilegedPort returns a loopback port below 1024 that is free: 443 if it
// is, else the first free one from 800 up.
func privilegedPort(t *testing.T) int {
	t.Helper()
	for _, p := range append([]int{443}, portRange(800, 1023)...) {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err == nil {
			l.Close()
			return p
		}
	}
	t.Fatal("no free loopback port below 1024")
	return 0
}

func portRange(from, to int) []int {
	var ps []int
	for p := from; p <= to; p++ {
		ps = append(ps, p)
	}
	return ps
}

// startEverything runs the Go SDK everything server on a host loopback port
// and returns its MCP URL.
func startEverything(t *testing.T, root, dir string) string {
	t.Helper()
	bin := os.Getenv("GO_EVERYTHING_BIN")
	if bin == "" {
		bin = filepath.Join(dir, "go-everything")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if err := harness.GoBuild(ctx, root, bin, "github.com/modelcontextprotocol/go-sdk/conformance/everything-server"); err != nil {
			t.Fatal(err)
		}
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p, err := procrun.StartListening(dir, "go-everything", addr, 30*time.Second, nil, bin, "-http", addr, "-stateless=false")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(5 * time.Second) })
	return "http://" + addr + "/mcp"
}

// container is a Debian root booted with systemd-nspawn.
type container struct {
	root string // the root directory, also seen from the host
	init int    // host pid of the container's PID 1, once booted
}

// newRoot copies the cached Debian root into dir.
func newRoot(t *testing.T, root, dir string) *container {
	t.Helper()
	c := &container{root: filepath.Join(dir, "root")}
	if out, err := runCmd(exec.Command("cp", "-a", "--reflink=auto", debianRoot(t, root), c.root), 5*time.Minute); err != nil {
		t.Fatalf("copying the Debian root: %v\n%s", err, out)
	}
	return c
}

// bootContainer boots c's root; the container is powered off at the end of
// the test, whatever its outcome.
func bootContainer(t *testing.T, c *container, dir string) {
	t.Helper()
	start := time.Now()
	logPath := filepath.Join(dir, "nspawn.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("systemd-nspawn", "--quiet", "--directory="+c.root,
		"--register=no", "--keep-unit", "--console=passive", "--boot")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group: a terminal's Ctrl-C is for the test, whose
	// cleanup powers the container off. (A parent-death signal does not
	// reach nspawn: a run that dies before its cleanups, such as a
	// -timeout panic, leaves the container to stopStaleContainers.)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var exitErr error
	go func() {
		exitErr = cmd.Wait()
		logFile.Close()
		close(exited)
	}()
	done := func() bool {
		select {
		case <-exited:
			return true
		default:
			return false
		}
	}
	t.Cleanup(func() {
		if t.Failed() && c.init != 0 {
			out, _, _ := c.exec("systemctl status mcpgw --no-pager; journalctl -u mcpgw --no-pager -n 60")
			t.Logf("the service in the container:\n%s", out)
		}
		// SIGTERM makes systemd-nspawn power the container off in order.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			t.Errorf("the container did not power off within 30 s; killed")
			_ = cmd.Process.Kill()
			if c.init != 0 {
				_ = syscall.Kill(c.init, syscall.SIGKILL)
			}
			<-exited
		}
	})
	waitFor(t, 20*time.Second, "the container's init", func() bool {
		c.init = containerInit(cmd.Process.Pid)
		return c.init != 0 || done()
	})
	if done() {
		t.Fatalf("systemd-nspawn exited: %v\n%s", exitErr, procrun.TailFile(logPath, 40))
	}
	// is-system-running fails until the container's bus is up; --wait then
	// waits for the boot to end.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, stderr, _ := c.execTimeout(2*time.Minute, "systemctl is-system-running --wait")
		state := strings.TrimSpace(out)
		if state == "degraded" {
			out, _, _ := c.exec("systemctl --failed --no-pager")
			t.Logf("the container booted degraded:\n%s", out)
		}
		if state == "running" || state == "degraded" {
			break
		}
		if done() || time.Now().After(deadline) {
			t.Fatalf("the container did not boot: %q %s\nsystemd-nspawn: %s", state, stderr, procrun.TailFile(logPath, 40))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("container booted in %v", time.Since(start).Round(100*time.Millisecond))
}

// stopStaleContainers powers off the containers that earlier runs of this
// test left running (a run killed before its cleanups), found by the root
// directory on their nspawn command line, and deletes those runs'
// temporary folders.
func stopStaleContainers(t *testing.T) {
	t.Helper()
	tempRoot := filepath.Join(os.TempDir(), "TestPackaging")
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, path := range cmdlines {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if filepath.Base(args[0]) != "systemd-nspawn" {
			continue
		}
		var dir string
		for _, a := range args {
			if d, ok := strings.CutPrefix(a, "--directory="); ok && strings.HasPrefix(d, tempRoot) {
				dir = d
			}
		}
		if dir == "" {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(path)))
		t.Logf("powering off a container an earlier run left: systemd-nspawn %d, root %s", pid, dir)
		init := containerInit(pid)
		_ = syscall.Kill(pid, syscall.SIGTERM)
		deadline := time.Now().Add(30 * time.Second)
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
		}
		if alive(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			if init != 0 {
				_ = syscall.Kill(init, syscall.SIGKILL)
			}
		}
		// dir is <TempDir>/TestPackaging<n>/<m>/root.
		if run := filepath.Dir(filepath.Dir(dir)); strings.HasPrefix(run, tempRoot) {
			if err := os.RemoveAll(run); err != nil {
				t.Logf("cannot remove %s: %v", run, err)
			}
		}
	}
}

// alive reports whether pid is a process that has not exited (a zombie
// counts as exited).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z") && !strings.HasPrefix(rest, "X")
}

// containerInit returns the pid of systemd-nspawn's child running systemd,
// or 0 while there is none yet.
func containerInit(nspawn int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", nspawn, nspawn))
	if err != nil {
		return 0
	}
	for _, f := range strings.Fields(string(b)) {
		pid, _ := strconv.Atoi(f)
		if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil && string(comm) == "systemd\n" {
			return pid
		}
	}
	return 0
}

// exec runs a shell script in the container's namespaces.
func (c *container) exec(script string) (stdout, stderr string, err error) {
	return c.execTimeout(time.Minute, script)
}

func (c *container) execTimeout(timeout time.Duration, script string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", "--target", strconv.Itoa(c.init), "--all", "--", "/bin/sh", "-c", script)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "SYSTEMD_PAGER="}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// sh runs a script in the container and fails the test unless it succeeds;
// it returns the script's standard output.
func (c *container) sh(t *testing.T, script string) string {
	t.Helper()
	stdout, stderr, err := c.exec(script)
	if err != nil {
		t.Fatalf("in the container: %s: %v\n%s%s", script, err, stdout, stderr)
	}
	return stdout
}

// wantShow runs a script in the container and compares its trimmed output.
func (c *container) wantShow(t *testing.T, want, script string) {
	t.Helper()
	got := strings.TrimSpace(c.sh(t, script))
	if got != want {
		t.Errorf("%s: got %q, want %q", script, got, want)
	}
}

func (c *container) mainPID(t *testing.T) int {
	t.Helper()
	pid, err := strconv.Atoi(strings.TrimSpace(c.sh(t, "systemctl show -p MainPID --value mcpgw")))
	if err != nil || pid == 0 {
		t.Fatalf("mcpgw's MainPID: %v (%d)", err, pid)
	}
	return pid
}

// debianRoot returns a minimal Debian bookworm root with systemd, made once by
// debootstrap and cached under .cache/packaging/ (about 240 MB; about 90 s
// to make).
func debianRoot(t *testing.T, root string) string {
	t.Helper()
	cached := filepath.Join(root, ".cache/packaging/bookworm-"+strings.Join(bookwormPackages, "-"))
	if _, err := os.Stat(filepath.Join(cached, "usr/lib/systemd/systemd")); err == nil {
		return cached
	}
	mirror := debianMirror(t)
	partial := cached + ".partial"
	if err := os.RemoveAll(partial); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(partial), 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	cmd := exec.Command("debootstrap", "--variant=minbase", "--include="+strings.Join(bookwormPackages, ","), "bookworm", partial, mirror)
	if out, err := runCmd(cmd, 10*time.Minute); err != nil {
		t.Fatalf("debootstrap from %s: %v\n%s", mirror, err, tail(out, 30))
	}
	if err := os.Rename(partial, cached); err != nil {
		t.Fatal(err)
	}
	// Roots made for another package list are stale.
	stale, _ := filepath.Glob(filepath.Join(filepath.Dir(cached), "bookworm-*"))
	for _, dir := range stale {
		if dir != cached {
			_ = os.RemoveAll(dir)
		}
	}
	t.Logf("debootstrap bookworm from %s in %v, cached in %s", mirror, time.Since(start).Round(time.Second), cached)
	return cached
}

// debianMirror is $DEBIAN_MIRROR, else the first URI this machine's apt
// sources use for the bookworm suite.
func debianMirror(t *testing.T) string {
	t.Helper()
	if m := os.Getenv("DEBIAN_MIRROR"); m != "" {
		return m
	}
	deb822, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
	for _, path := range deb822 {
		b, _ := os.ReadFile(path)
		for _, stanza := range strings.Split(string(b), "\n\n") {
			fields := map[string][]string{}
			for _, line := range strings.Split(stanza, "\n") {
				if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, "#") {
					fields[strings.ToLower(strings.TrimSpace(k))] = strings.Fields(v)
				}
			}
			if slices.Contains(fields["suites"], "bookworm") && len(fields["uris"]) > 0 {
				return fields["uris"][0]
			}
		}
	}
	lists, _ := filepath.Glob("/etc/apt/sources.list.d/*.list")
	options := regexp.MustCompile(`\[[^]]*\]`)
	for _, path := range append([]string{"/etc/apt/sources.list"}, lists...) {
		b, _ := os.ReadFile(path)
		for _, line := range strings.Split(string(b), "\n") {
			// deb [options] URI suite components...
			if f := strings.Fields(options.ReplaceAllString(line, "")); len(f) >= 3 && f[0] == "deb" && f[2] == "bookworm" {
				return f[1]
			}
		}
	}
	t.Fatal("no apt source for bookworm on this machine: set DEBIAN_MIRROR")
	return ""
}

// exposure parses the score of `systemd-analyze security` and checks it.
func exposure(t *testing.T, out string) float64 {
	t.Helper()
	m := regexp.MustCompile(`Overall exposure level for mcpgw\.service: ([0-9]+\.[0-9])`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	score, _ := strconv.ParseFloat(m[1], 64)
	if score > maxExposure {
		t.Errorf("exposure level %.1f, want at most %.1f:\n%s", score, maxExposure, out)
	}
	return score
}

// debPackageVersion is the Debian version nfpm gives a package built from
// module version v (without its "v"): the first "-" of a pre-release becomes
// "~", so that it sorts before the release, and the revision is 1.
func debPackageVersion(v string) string {
	return strings.Replace(v, "-", "~", 1) + "-1"
}

func freePort(t *testing.T) int {
	t.Helper()
	p, err := procrun.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// run runs a host command and fails the test unless it succeeds.
func run(t *testing.T, timeout time.Duration, name string, args ...string) string {
	t.Helper()
	out, err := runCmd(exec.Command(name, args...), timeout)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// runCmd runs cmd with a timeout and returns its combined output.
func runCmd(cmd *exec.Cmd, timeout time.Duration) (string, error) {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		return out.String(), errors.New("timed out after " + timeout.String())
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

package fakes_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/bottle-dev/bottle/internal/fakes/docker"
	"github.com/bottle-dev/bottle/internal/fakes/pipelock"
	"github.com/bottle-dev/bottle/internal/fakes/smolvm"
)

// TestMain registers the stand-ins the way bottle's testscript suite
// does, so the scripts below run them as real processes from PATH.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"smolvm":   func() { os.Exit(smolvm.Main()) },
		"pipelock": func() { os.Exit(pipelock.Main()) },
		"docker":   func() { os.Exit(docker.Main()) },
	})
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 filepath.Join("testdata", "script"),
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Cmds: map[string]func(*testscript.TestScript, bool, []string){
			"freeport":   cmdFreeport,
			"waithealth": cmdWaithealth,
			"proxyreq":   cmdProxyreq,
		},
		Condition: func(cond string) (bool, error) {
			switch cond {
			case "root":
				// The smolvm stand-in emulates the guest with namespaces,
				// mounts and chroot, which need root.
				return os.Geteuid() == 0, nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Setup: func(env *testscript.Env) error {
			state := filepath.Join(env.WorkDir, "smolvm-state")
			// A script that fails half-way must not leave guests running.
			env.Defer(func() { smolvm.Cleanup(state) })
			env.Setenv("FAKE_SMOLVM_STATE", state)
			env.Setenv("FAKE_SMOLVM_LOG", filepath.Join(env.WorkDir, "argv.log"))
			env.Setenv("FAKE_DOCKER_LOG", filepath.Join(env.WorkDir, "argv.log"))
			env.Setenv("FAKE_PIPELOCK_LOG", filepath.Join(env.WorkDir, "argv.log"))
			return nil
		},
	})
}

// cmdFreeport sets the environment variable named by its argument to a
// loopback "127.0.0.1:port" address whose port was free a moment ago.
func cmdFreeport(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: freeport NAME")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	ts.Setenv(args[0], ln.Addr().String())
	ts.Check(ln.Close())
}

// cmdWaithealth polls http://ADDR/health until it answers 200, for up to
// ten seconds; "! waithealth" waits for it to stop answering.
func cmdWaithealth(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: waithealth ADDR")
	}
	client := &http.Client{Timeout: time.Second}
	var last string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		resp, err := client.Get("http://" + args[0] + "/health")
		if err == nil {
			resp.Body.Close()
			last = resp.Status
		} else {
			last = err.Error()
		}
		if (err == nil && resp.StatusCode == http.StatusOK) != neg {
			return
		}
	}
	ts.Fatalf("waithealth %s: last answer %s", args[0], last)
}

// cmdProxyreq sends one forward-proxy request to the proxy at ADDR, as an
// HTTPS_PROXY client does: "CONNECT host:port" or "GET absolute-URL", and
// writes the status line, the X-Pipelock-Hint header (if any), an empty
// line and the body to the script's stdout.
func cmdProxyreq(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: proxyreq ADDR METHOD TARGET")
	}
	host := args[2]
	if args[1] != http.MethodConnect {
		u, err := url.Parse(args[2])
		ts.Check(err)
		host = u.Host
	}
	conn, err := net.DialTimeout("tcp", args[0], 5*time.Second)
	ts.Check(err)
	defer conn.Close()
	ts.Check(conn.SetDeadline(time.Now().Add(10 * time.Second)))
	_, err = fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\n\r\n", args[1], args[2], host)
	ts.Check(err)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	ts.Check(err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	ts.Check(err)
	fmt.Fprintf(ts.Stdout(), "%s\n", resp.Status)
	if h := resp.Header.Get("X-Pipelock-Hint"); h != "" {
		fmt.Fprintf(ts.Stdout(), "X-Pipelock-Hint: %s\n", h)
	}
	fmt.Fprintf(ts.Stdout(), "\n%s", body)
}

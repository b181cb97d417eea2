package docker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkAgentFirstRequest measures the time from `bottle start --yes
// --prompt` to the agent's first request at a mock of its API, for each
// provider, side by side with the same client in the same image started
// with `docker run` on the mock's network, without bottle (its key in its
// environment, the mock's certificate trusted directly). It reports the
// median of b.N runs of each in ms, and their ratio.
//
//	BOTTLE_TEST_CLAUDE_IMAGE=... BOTTLE_TEST_CODEX_IMAGE=... \
//	  go test ./backends/docker -run '^$' -bench AgentFirstRequest -benchtime 5x
func BenchmarkAgentFirstRequest(b *testing.B) {
	for _, tc := range []struct {
		name, imageEnv, host, keyEnv, prefix, clientKey string
		profile                                         string
		direct                                          []string
		trustEnv                                        string
	}{
		{"claude", "BOTTLE_TEST_CLAUDE_IMAGE", "api.anthropic.com", "TEST_ANTHROPIC_KEY", "sk-ant-api03-", "ANTHROPIC_API_KEY",
			`agent(command = ["claude"], provider = "claude")`, []string{"claude", "-p", "say hi"}, "NODE_EXTRA_CA_CERTS"},
		{"codex", "BOTTLE_TEST_CODEX_IMAGE", "api.openai.com", "TEST_OPENAI_KEY", "sk-proj-", "OPENAI_API_KEY",
			`agent(command = ["codex"], provider = "codex")`, []string{"codex", "exec", "--skip-git-repo-check", "say hi"}, "SSL_CERT_FILE"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			img := benchImage(b, tc.imageEnv)
			e := newEnv(b)
			profile := e.profile(tc.name+"-bench.star", fmt.Sprintf(`
docker(image = %q)
%s
allow(%q, allow_private = True)
secret(%q, from_env = %q, hosts = [%q])
`, img, tc.profile, tc.host, tc.clientKey, tc.keyEnv, tc.host))
			slug := e.slugOf(profile)
			key, mock := startMockAPI(b, e, slug, tc.host, tc.keyEnv, tc.prefix)
			var certFile string
			for _, kv := range e.extra {
				if v, ok := strings.CutPrefix(kv, "SSL_CERT_FILE="); ok {
					certFile = v
				}
			}
			var viaBottle, direct []time.Duration
			for b.Loop() {
				start := time.Now()
				out, stderr, _ := e.run("start", "--yes", "--prompt", "say hi", profile)
				viaBottle = append(viaBottle, firstRequestAfter(b, mock, start, out+stderr))

				start = time.Now()
				// The image's own user and HOME (Codex refuses a home
				// under /tmp).
				args := []string{"run", "--rm", "--network", mock,
					"-e", tc.clientKey + "=" + key, "-e", tc.trustEnv + "=/srv/ca.pem",
					"--mount", "type=bind,src=" + filepath.Dir(certFile) + ",dst=/srv,readonly", img}
				if tc.name == "codex" {
					// Codex's own provider settings, as bottle renders them.
					args = append(args, "sh", "-c", "mkdir -p $HOME/.codex && printf '%s' \"$0\" > $HOME/.codex/config.toml && exec \"$@\" </dev/null",
						codexDirectConfig)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				dout, _ := exec.CommandContext(ctx, "docker", append(args, tc.direct...)...).CombinedOutput()
				cancel()
				direct = append(direct, firstRequestAfter(b, mock, start, string(dout)))
			}
			mb, md := median(viaBottle), median(direct)
			b.ReportMetric(float64(mb.Milliseconds()), "bottle-ms")
			b.ReportMetric(float64(md.Milliseconds()), "docker-run-ms")
			b.ReportMetric(float64(mb)/float64(md), "bottle/docker-run")
		})
	}
}

// codexDirectConfig points Codex, run without bottle, at the API over
// HTTPS with its key from OPENAI_API_KEY, as bottle's provider does.
const codexDirectConfig = `model_provider = "direct"
[model_providers.direct]
name = "direct"
base_url = "https://api.openai.com/v1"
env_key = "OPENAI_API_KEY"
wire_api = "responses"
supports_websockets = false
[features]
unbounded_connection_retries = false
`

func benchImage(b *testing.B, env string) string {
	b.Helper()
	img := strings.TrimSpace(os.Getenv(env))
	if img == "" {
		b.Skipf("skipping: set %s to an agent image (scripts/agent-image)", env)
	}
	return img
}

// firstRequestAfter returns how long after start the mock logged its
// first request since start.
func firstRequestAfter(b *testing.B, mock string, start time.Time, clientOutput string) time.Duration {
	b.Helper()
	out, _ := exec.Command("docker", "logs", mock).Output()
	for _, line := range strings.Split(string(out), "\n") {
		var r struct {
			TimeNS int64 `json:"time_ns"`
		}
		if json.Unmarshal([]byte(line), &r) == nil && r.TimeNS >= start.UnixNano() {
			return time.Duration(r.TimeNS - start.UnixNano())
		}
	}
	b.Fatalf("no request reached the mock after %s:\n%s\nthe client said:\n%s", start, out, clientOutput)
	return 0
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

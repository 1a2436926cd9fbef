//go:build linux

package bench

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/corral-dev/corral/agent/sshca"
	"github.com/corral-dev/corral/internal/testutil"
)

// sshPayload is what each case pushes through `ssh host cat`: it goes up
// to the target and comes back down.
const sshPayload = 256 << 20

// BenchmarkSSHCat sends 256 MiB through `ssh host cat` and reads it back,
// against one real OpenSSH server: directly with a key (baseline), and
// through corral, which holds the key, decides the command and records
// the session (the output is kept in the terminal recording up to its
// bound and counted beyond), and with recording off. ns/op is the time of
// one transfer, so benchratio's ratio is throughput relative to direct.
func BenchmarkSSHCat(b *testing.B) {
	testutil.RequireBPF(b)
	host := testutil.NewHost(b)
	attached := testutil.NewCgroup(b, "")
	agentCg := testutil.NewCgroup(b, attached)
	workCg := testutil.NewCgroup(b, attached)
	outside := testutil.NewCgroup(b, "")
	dir := b.TempDir()

	authority, err := sshca.Open(filepath.Join(dir, "ssh"))
	if err != nil {
		b.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, _ := gossh.MarshalPrivateKey(priv, "")
	key := filepath.Join(dir, "key")
	os.WriteFile(key, pem.EncodeToMemory(block), 0o600)
	spub, _ := gossh.NewPublicKey(pub)
	sshd := testutil.StartSSHD(b, host, testutil.SSHDOptions{AuthorizedKeys: []string{string(gossh.MarshalAuthorizedKey(spub))}})
	targetKnown := filepath.Join(dir, "target_known_hosts")
	os.WriteFile(targetKnown, []byte(sshd.KnownHostsLine()+"\n"), 0o600)
	clientKnown := filepath.Join(dir, "client_known_hosts")
	os.WriteFile(clientKnown, []byte(sshd.KnownHostsLine()+"\n"+authority.KnownHostsLine()+"\n"), 0o600)

	cfg := filepath.Join(dir, "corral.yaml")
	base := fmt.Sprintf(`targets:
  - name: bench-ssh
    protocol: ssh
    endpoints: ["%s:22"]
    ssh: {known_hosts: %s}
    credentials:
      default: {username: deploy, private_key_file: %s}
rules:
  - name: bench
    who: {exe: /usr/bin/ssh}
    targets: [bench-ssh]
    allow: [exec]
audit_log: %[4]s/audit.log
state_dir: %[4]s
admin_socket: %[4]s/admin.sock
cgroup_path: %[5]s
bpf_pin_dir: %[6]s
`, host.Addr, targetKnown, key, dir, attached, testutil.BPFPinDir(b))
	os.WriteFile(cfg, []byte(base), 0o600)
	agent := testutil.StartAgent(b, cfg, agentCg)
	recording := func(mode string) {
		from := agent.Mark()
		next := strings.Replace(base, "    protocol: ssh\n", "    protocol: ssh\n    recording: "+mode+"\n", 1)
		os.WriteFile(cfg, []byte(next), 0o600)
		agent.WaitLine(b, from, func(l string) bool { return strings.Contains(l, "configuration reloaded") })
	}

	// Each case runs twice: with the client's default cipher (OpenSSH
	// 9.2 takes chacha20-poly1305 with OpenSSH and aes128-ctr with
	// hmac-sha2-256-etm with corral, which does not offer ChaCha20: Go has
	// no fast one on amd64) and with AES-GCM asked for on both.
	for _, cipher := range []string{"default", "aes128-gcm@openssh.com"} {
		for _, tc := range []struct {
			name, cgroup, recording string
			args                    []string
		}{
			{"baseline", outside, "", []string{"-i", key}},
			{"corral", workCg, "strict", []string{"-o", "PubkeyAuthentication=no"}},
			{"corral-unrecorded", workCg, "off", []string{"-o", "PubkeyAuthentication=no"}},
		} {
			name := "cat-256MiB"
			if cipher != "default" {
				name += "-aes128gcm"
			}
			b.Run(name+"/"+tc.name, func(b *testing.B) {
				if tc.recording != "" {
					recording(tc.recording)
				}
				cpu0 := testutil.ProcessCPU(b, agent.PID())
				for i := 0; i < b.N; i++ {
					args := append([]string{"-F", "/dev/null", "-o", "UserKnownHostsFile=" + clientKnown, "-o", "StrictHostKeyChecking=yes",
						"-o", "BatchMode=yes", "-o", "LogLevel=ERROR"}, tc.args...)
					if cipher != "default" {
						args = append(args, "-c", cipher)
					}
					cmd := exec.Command("ssh", append(args, "deploy@"+host.Addr.String(), "cat")...)
					cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: testutil.CgroupFD(b, tc.cgroup)}
					cmd.Stdin = io.LimitReader(zeros{}, sshPayload)
					var n countWriter
					var stderr bytes.Buffer
					cmd.Stdout, cmd.Stderr = &n, &stderr
					start := time.Now()
					if err := cmd.Run(); err != nil || n != sshPayload {
						b.Fatalf("ssh cat: %v: %d bytes back\n%s", err, n, stderr.String())
					}
					b.ReportMetric(float64(sshPayload)/(1<<20)/time.Since(start).Seconds(), "MiB/s")
				}
				if tc.recording != "" {
					// The agent's CPU time per MiB carried (each MiB goes up
					// and comes back): steadier than throughput on a noisy
					// machine.
					cpu := testutil.ProcessCPU(b, agent.PID()) - cpu0
					b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N*sshPayload>>20), "agent-ms/MiB")
				}
			})
		}
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}

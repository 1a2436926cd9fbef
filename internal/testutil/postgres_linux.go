package testutil

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Postgres is a real PostgreSQL server started for a test on a test host.
type Postgres struct {
	Addr   netip.AddrPort // where clients connect (the test host's address)
	Dir    string         // data directory and unix socket directory
	CAFile string         // the CA that signed the server certificate (TLS only)
	uid    int
	gid    int
}

// PostgresOptions shape the server.
type PostgresOptions struct {
	// TLSOnly makes the server refuse TCP connections without TLS; its
	// certificate is for the host's address and ServerName.
	TLSOnly    bool
	ServerName string
}

// PostgresBin returns the directory of Debian's PostgreSQL binaries.
func PostgresBin(t testing.TB) string {
	t.Helper()
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Strings(dirs)
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "postgres")); err == nil {
			return dirs[i]
		}
	}
	skipOrFail(t, "PostgreSQL is not installed (apt-get install postgresql)")
	return ""
}

// StartPostgres runs PostgreSQL as the postgres user inside host's network
// namespace, listening on host.Addr:5432, and stops it at cleanup.
// Password logins over TCP use SCRAM-SHA-256, but for the roles md5user
// (md5) and clearuser (the password in clear).
func StartPostgres(t testing.TB, host *Host, opts PostgresOptions) *Postgres {
	t.Helper()
	RequireRoot(t)
	bin := PostgresBin(t)
	u, err := user.Lookup("postgres")
	if err != nil {
		skipOrFail(t, "no postgres user (apt-get install postgresql)")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir, err := os.MkdirTemp("", "corral-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := &Postgres{Addr: netip.AddrPortFrom(host.Addr, 5432), Dir: dir, uid: uid, gid: gid}
	os.Chown(dir, uid, gid)
	data := filepath.Join(dir, "data")

	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	conf := fmt.Sprintf("listen_addresses = '%s'\nport = 5432\nunix_socket_directories = '%s'\nfsync = off\nmax_connections = 100\n", host.Addr, dir)
	hba := "local all all trust\n"
	if opts.TLSOnly {
		p.CAFile = writeServerCert(t, dir, host.Addr, opts.ServerName, uid, gid)
		conf += fmt.Sprintf("ssl = on\nssl_cert_file = '%s/server.crt'\nssl_key_file = '%s/server.key'\n", dir, dir)
		hba += "hostnossl all all 0.0.0.0/0 reject\nhostssl all clearuser 0.0.0.0/0 password\nhostssl all all 0.0.0.0/0 scram-sha-256\n"
	} else {
		hba += "host all md5user 0.0.0.0/0 md5\nhost all clearuser 0.0.0.0/0 password\nhost all all 0.0.0.0/0 scram-sha-256\n"
	}
	appendFile(t, filepath.Join(data, "postgresql.conf"), conf)
	if err := os.WriteFile(filepath.Join(data, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chown(filepath.Join(data, "pg_hba.conf"), uid, gid)

	cmd := exec.Command("nsenter", "--net="+host.NS, "--setgid", u.Gid, "--setuid", u.Uid, filepath.Join(bin, "postgres"), "-D", data)
	logf, _ := os.Create(filepath.Join(dir, "server.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start postgres: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGINT) // fast shutdown
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "server.log"))
			t.Logf("postgres log:\n%s", b)
		}
	})
	// Ready when the server accepts on its socket; the postmaster writes no
	// event a test could wait on, so ask it, briefly, until it answers.
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := p.connect(context.Background(), "postgres")
		if err == nil {
			c.Close(context.Background())
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "server.log"))
			t.Fatalf("postgres did not start: %v\n%s", err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return p
}

func appendFile(t testing.TB, path, s string) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString(s)
}

// connect opens a superuser connection over the unix socket.
func (p *Postgres) connect(ctx context.Context, db string) (*pgconn.PgConn, error) {
	return pgconn.Connect(ctx, fmt.Sprintf("host=%s port=5432 user=postgres dbname=%s sslmode=disable", p.Dir, db))
}

// Exec runs SQL as the superuser in database db, failing the test on error.
func (p *Postgres) Exec(t testing.TB, db, sql string) [][]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := p.connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	results, err := c.Exec(ctx, sql).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	var out [][]string
	for _, r := range results {
		for _, row := range r.Rows {
			var vals []string
			for _, v := range row {
				vals = append(vals, string(v))
			}
			out = append(out, vals)
		}
	}
	return out
}

// writeServerCert makes a CA and a server certificate for addr and name,
// and returns the CA's path.
func writeServerCert(t testing.TB, dir string, addr netip.Addr, name string, uid, gid int) string {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "corral test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{addr.AsSlice()}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if name != "" {
		srv.DNSNames = []string{name}
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srv, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(srvKey)
	write := func(name string, typ string, der []byte, mode os.FileMode) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
			t.Fatal(err)
		}
		os.Chown(path, uid, gid)
		return path
	}
	write("server.crt", "CERTIFICATE", srvDER, 0o644)
	write("server.key", "EC PRIVATE KEY", keyDER, 0o600)
	return write("ca.crt", "CERTIFICATE", caDER, 0o644)
}

// Command runs a client program (psql, pgbench) inside cgroup, as a
// workload would, and returns its combined output and error.
func Command(t testing.TB, cgroup string, env []string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: CgroupFD(t, cgroup)}
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

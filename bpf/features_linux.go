package bpf

import (
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"
)

// Features probes the running kernel for everything the programs use. It
// needs the privileges the agent runs with.
func Features() []Feature {
	var fs []Feature
	add := func(name string, err error) { fs = append(fs, Feature{name, err}) }

	_, err := btf.LoadKernelSpec()
	add("kernel BTF (/sys/kernel/btf/vmlinux)", err)
	add("program type cgroup/sock_addr (connect4/connect6)", features.HaveProgramType(ebpf.CGroupSockAddr))
	add("program type sockops", features.HaveProgramType(ebpf.SockOps))
	for _, m := range []struct {
		name string
		t    ebpf.MapType
	}{
		{"LPM trie", ebpf.LPMTrie},
		{"LRU hash", ebpf.LRUHash},
		{"socket local storage (SK_STORAGE)", ebpf.SkStorage},
		{"ring buffer", ebpf.RingBuf},
		{"per-CPU array", ebpf.PerCPUArray},
	} {
		add("map type "+m.name, features.HaveMapType(m.t))
	}
	for _, h := range []struct {
		pt   ebpf.ProgramType
		name string
		fn   asm.BuiltinFunc
	}{
		{ebpf.CGroupSockAddr, "bpf_get_netns_cookie", asm.FnGetNetnsCookie},
		{ebpf.CGroupSockAddr, "bpf_get_current_cgroup_id", asm.FnGetCurrentCgroupId},
		{ebpf.CGroupSockAddr, "bpf_sk_lookup_tcp", asm.FnSkLookupTcp},
		{ebpf.CGroupSockAddr, "bpf_sk_storage_get", asm.FnSkStorageGet},
		{ebpf.CGroupSockAddr, "bpf_ringbuf_output", asm.FnRingbufOutput},
		{ebpf.SockOps, "bpf_sk_storage_get", asm.FnSkStorageGet},
	} {
		add(fmt.Sprintf("helper %s in %s", h.name, h.pt), features.HaveProgramHelper(h.pt, h.fn))
	}
	add("socket option SO_NETNS_COOKIE", probeNetnsCookie())
	return fs
}

func probeNetnsCookie() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	_, err = unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	return err
}

// IsBPFFS reports whether dir is on a bpf filesystem.
func IsBPFFS(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && st.Type == unix.BPF_FS_MAGIC
}

// MountBPFFS makes sure dir is a bpffs mount, mounting one if needed, as
// agents conventionally do at /sys/fs/bpf on hosts that do not mount it.
func MountBPFFS(dir string) error {
	if IsBPFFS(dir) {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("mount bpffs at %s: %w", dir, err)
	}
	return nil
}

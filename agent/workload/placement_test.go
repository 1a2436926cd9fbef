package workload

import (
	"strings"
	"testing"
)

const (
	testCID    = "3f1a2b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708"
	testCID2   = "a7c3e9f1b2d4a6c8e0f2b4d6a8c0e2f4b6d8a0c2e4f6b8d0a2c4e6f8b0d2a4c6"
	testUID    = "1b2c3d4e-5f60-7a8b-9c0d-e1f2a3b4c5d6"
	testUIDU   = "1b2c3d4e_5f60_7a8b_9c0d_e1f2a3b4c5d6"
	testStatic = "9b1c7b4a0e2b3c4d5e6f708192a3b4c5"
)

func TestParseCgroupPath(t *testing.T) {
	pod := func(qos, cid, rt string) Placement {
		return Placement{PodUID: testUID, QoS: qos, ContainerID: cid, Runtime: rt}
	}
	tests := []struct {
		name string
		path string
		want Placement
	}{
		// systemd driver
		{"systemd burstable containerd",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + testUIDU + ".slice/cri-containerd-" + testCID + ".scope",
			pod(QoSBurstable, testCID, RuntimeContainerd)},
		{"systemd besteffort containerd",
			"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + testUIDU + ".slice/cri-containerd-" + testCID + ".scope",
			pod(QoSBestEffort, testCID, RuntimeContainerd)},
		{"systemd guaranteed containerd",
			"/kubepods.slice/kubepods-pod" + testUIDU + ".slice/cri-containerd-" + testCID + ".scope",
			pod(QoSGuaranteed, testCID, RuntimeContainerd)},
		{"systemd crio",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + testUIDU + ".slice/crio-" + testCID + ".scope",
			pod(QoSBurstable, testCID, RuntimeCRIO)},
		{"systemd crio conmon is not the container",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + testUIDU + ".slice/crio-conmon-" + testCID + ".scope",
			pod(QoSBurstable, "", RuntimeCRIO)},
		{"systemd crio nested container cgroup",
			"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + testUIDU + ".slice/crio-" + testCID + ".scope/container",
			pod(QoSBestEffort, testCID, RuntimeCRIO)},
		{"systemd dockershim",
			"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + testUIDU + ".slice/docker-" + testCID + ".scope",
			pod(QoSBestEffort, testCID, RuntimeDocker)},
		{"systemd pod level only",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + testUIDU + ".slice",
			pod(QoSBurstable, "", "")},
		{"systemd static pod uid",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + testStatic + ".slice/cri-containerd-" + testCID + ".scope",
			Placement{PodUID: testStatic, QoS: QoSBurstable, ContainerID: testCID, Runtime: RuntimeContainerd}},
		{"kind kubelet.slice prefix",
			"/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod" + testUIDU + ".slice/cri-containerd-" + testCID + ".scope",
			pod(QoSBestEffort, testCID, RuntimeContainerd)},
		{"kind node seen from the host",
			"/system.slice/docker-" + testCID2 + ".scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod" + testUIDU + ".slice/cri-containerd-" + testCID + ".scope",
			pod(QoSGuaranteed, testCID, RuntimeContainerd)},
		{"containerd colon form under containerd.service",
			"/system.slice/containerd.service/kubepods-burstable-pod" + testUIDU + ".slice:cri-containerd:" + testCID,
			pod(QoSBurstable, testCID, RuntimeContainerd)},
		{"crio colon form",
			"/kubepods-besteffort-pod" + testUIDU + ".slice:crio:" + testCID,
			pod(QoSBestEffort, testCID, RuntimeCRIO)},
		{"systemd inside a container is not the unit",
			"/kubepods.slice/kubepods-pod" + testUIDU + ".slice/cri-containerd-" + testCID + ".scope/init.scope",
			pod(QoSGuaranteed, testCID, RuntimeContainerd)},

		// cgroupfs driver
		{"cgroupfs burstable",
			"/kubepods/burstable/pod" + testUID + "/" + testCID,
			pod(QoSBurstable, testCID, "")},
		{"cgroupfs besteffort",
			"/kubepods/besteffort/pod" + testUID + "/" + testCID,
			pod(QoSBestEffort, testCID, "")},
		{"cgroupfs guaranteed",
			"/kubepods/pod" + testUID + "/" + testCID,
			pod(QoSGuaranteed, testCID, "")},
		{"cgroupfs containerd-style leaf",
			"/kubepods/burstable/pod" + testUID + "/cri-containerd-" + testCID,
			pod(QoSBurstable, testCID, RuntimeContainerd)},
		{"cgroupfs crio leaf",
			"/kubepods/pod" + testUID + "/crio-" + testCID,
			pod(QoSGuaranteed, testCID, RuntimeCRIO)},
		{"cgroupfs crio conmon leaf",
			"/kubepods/pod" + testUID + "/crio-conmon-" + testCID,
			pod(QoSGuaranteed, "", RuntimeCRIO)},
		{"cgroupfs under kind prefix",
			"/kubelet/kubepods/besteffort/pod" + testUID + "/" + testCID,
			pod(QoSBestEffort, testCID, "")},
		{"cgroupfs kind node seen from a cgroupfs docker host",
			"/docker/" + testCID2 + "/kubepods/burstable/pod" + testUID + "/" + testCID,
			pod(QoSBurstable, testCID, "")},
		{"cgroupfs pod level only",
			"/kubepods/burstable/pod" + testUID,
			pod(QoSBurstable, "", "")},
		{"docker in a pod keeps the pod's container",
			"/kubepods/burstable/pod" + testUID + "/" + testCID + "/docker/" + testCID2,
			pod(QoSBurstable, testCID, "")},
		{"docker cgroupfs",
			"/docker/" + testCID,
			Placement{ContainerID: testCID, Runtime: RuntimeDocker}},
		{"docker short id",
			"/docker/" + testCID[:12],
			Placement{ContainerID: testCID[:12], Runtime: RuntimeDocker}},
		{"docker systemd scope",
			"/system.slice/docker-" + testCID + ".scope",
			Placement{ContainerID: testCID, Runtime: RuntimeDocker}},
		{"nested docker: the outer one is what the host runtime knows",
			"/docker/" + testCID + "/docker/" + testCID2,
			Placement{ContainerID: testCID, Runtime: RuntimeDocker}},

		// systemd units
		{"service", "/system.slice/nginx.service", Placement{Unit: "nginx.service"}},
		{"session scope", "/user.slice/user-1000.slice/session-3.scope", Placement{Unit: "session-3.scope"}},
		{"below a service", "/system.slice/foo.service/sub/leaf", Placement{Unit: "foo.service"}},
		{"template unit", "/system.slice/system-getty.slice/getty@tty1.service", Placement{Unit: "getty@tty1.service"}},
		{"user manager unit", "/user.slice/user-1000.slice/user@1000.service/app.slice/app-firefox-42.scope", Placement{Unit: "app-firefox-42.scope"}},
		{"init scope", "/init.scope", Placement{Unit: "init.scope"}},
		{"docker-prefixed service is a unit", "/system.slice/docker-compose@web.service", Placement{Unit: "docker-compose@web.service"}},
		{"runtime service itself", "/system.slice/containerd.service", Placement{Unit: "containerd.service"}},
		{"no trailing slash issues", "system.slice//nginx.service/", Placement{Unit: "nginx.service"}},

		// plain and malformed
		{"root", "/", Placement{}},
		{"empty", "", Placement{}},
		{"plain", "/my/test/cgroup", Placement{}},
		{"qos level only", "/kubepods.slice/kubepods-burstable.slice", Placement{}},
		{"uid with a bad digit", "/kubepods.slice/kubepods-pod1b2c3d4e_5f60_7a8b_9c0d_e1f2a3b4c5dz.slice/cri-containerd-" + testCID + ".scope",
			Placement{ContainerID: testCID, Runtime: RuntimeContainerd}},
		{"uid with dashes in a slice", "/kubepods.slice/kubepods-pod1b2c3d4e-5f60-7a8b-9c0d-e1f2a3b4c5d6.slice", Placement{}},
		{"short uid", "/kubepods/burstable/pod1b2c3d4e-5f60-7a8b-9c0d-e1f2a3b4c5d/" + testCID, Placement{}},
		{"uppercase uid", "/kubepods/pod" + strings.ToUpper(testUID) + "/" + testCID, Placement{}},
		{"short container id", "/kubepods/pod" + testUID + "/abc123", pod(QoSGuaranteed, "", "")},
		{"non-hex container scope is neither container nor unit",
			"/system.slice/foo.service/cri-containerd-nothex.scope", Placement{Unit: "foo.service"}},
		{"overlong container id", "/docker/" + testCID + "0", Placement{}},
		{"pod outside kubepods", "/foo/pod" + testUID + "/" + testCID, Placement{}},
		{"unknown qos", "/kubepods/guaranteed/pod" + testUID + "/" + testCID, Placement{}},
		{"extra slice component", "/kubepods.slice/kubepods-burstable-pod" + testUIDU + "-x.slice", Placement{}},
		{"colon form with unknown runtime", "/kubepods-pod" + testUIDU + ".slice:rkt:" + testCID, Placement{}},
		{"bare suffixes", "/.service/.scope", Placement{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseCgroupPath(tt.path); got != tt.want {
				t.Errorf("ParseCgroupPath(%q)\n got %+v\nwant %+v", tt.path, got, tt.want)
			}
		})
	}
}

func TestValidPodUID(t *testing.T) {
	for _, s := range []string{testUID, testStatic, "00000000-0000-0000-0000-000000000000"} {
		if !validPodUID(s) {
			t.Errorf("validPodUID(%q) = false", s)
		}
	}
	for _, s := range []string{"", testUIDU, testUID + "0", testUID[:35], "1b2c3d4e-5f60-7a8b-9c0d+e1f2a3b4c5d6", testStatic[:31], strings.ToUpper(testStatic)} {
		if validPodUID(s) {
			t.Errorf("validPodUID(%q) = true", s)
		}
	}
}

func FuzzParseCgroupPath(f *testing.F) {
	for _, s := range []string{
		"/",
		"/system.slice/nginx.service",
		"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + testUIDU + ".slice/cri-containerd-" + testCID + ".scope",
		"/kubepods/besteffort/pod" + testUID + "/" + testCID,
		"/system.slice/containerd.service/kubepods-burstable-pod" + testUIDU + ".slice:cri-containerd:" + testCID,
		"/docker/" + testCID,
		"/kubepods/pod" + testUID + "/crio-conmon-" + testCID,
		"/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod" + testStatic + ".slice/crio-" + testCID + ".scope",
	} {
		f.Add(s)
	}
	runtimes := map[string]bool{"": true, RuntimeContainerd: true, RuntimeCRIO: true, RuntimeDocker: true}
	qos := map[string]bool{QoSGuaranteed: true, QoSBurstable: true, QoSBestEffort: true}
	f.Fuzz(func(t *testing.T, p string) {
		pl := ParseCgroupPath(p)
		if pl.PodUID != "" {
			if !validPodUID(pl.PodUID) {
				t.Fatalf("PodUID %q is not a pod UID", pl.PodUID)
			}
			if !qos[pl.QoS] {
				t.Fatalf("QoS %q for pod %q", pl.QoS, pl.PodUID)
			}
		} else if pl.QoS != "" {
			t.Fatalf("QoS %q without a pod", pl.QoS)
		}
		if pl.ContainerID != "" && !validContainerID(pl.ContainerID) {
			t.Fatalf("ContainerID %q is not a container id", pl.ContainerID)
		}
		if !runtimes[pl.Runtime] {
			t.Fatalf("Runtime %q", pl.Runtime)
		}
		if pl.Unit != "" {
			if pl.PodUID != "" || pl.ContainerID != "" || pl.Runtime != "" {
				t.Fatalf("Unit %q alongside a pod or container: %+v", pl.Unit, pl)
			}
			if strings.Contains(pl.Unit, "/") || !strings.Contains(p, pl.Unit) {
				t.Fatalf("Unit %q is not an element of %q", pl.Unit, p)
			}
		}
	})
}

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "hwameistor.io/local/api/v1alpha1"
)

func eventually(t *testing.T, what string, timeout time.Duration, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(context.Background(), 250*time.Millisecond, timeout, true, cond); err != nil {
		t.Fatalf("waiting for %s: %v\n%s", what, err, h.Logs())
	}
}

// TestVolumeLifecycle: a WaitForFirstConsumer claim and a pod that names no
// scheduler → the webhook routes it to hwameistor-scheduler → placement →
// external-provisioner → CreateVolume → LocalVolume Ready on a loop device →
// PV bound → pod bound; then data written and read through the mounted xfs
// volume, the claim expanded and the filesystem grown, and the claim deleted
// with the pool's space returned.
func TestVolumeLifecycle(t *testing.T) {
	ctx := context.Background()
	ns := "e2e"
	if _, err := h.Clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	mode := storagev1.VolumeBindingWaitForFirstConsumer
	sc := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "e2e-hdd"}, Provisioner: v1.DriverName,
		VolumeBindingMode: &mode, AllowVolumeExpansion: ptr.To(true),
		Parameters: map[string]string{"poolClass": "HDD", "replicaNumber": "1", "csi.storage.k8s.io/fstype": "xfs"}}
	if _, err := h.Clientset.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the node agent to report the pool", 60*time.Second, func(ctx context.Context) (bool, error) {
		lsn := &v1.LocalStorageNode{}
		if err := h.Client.Get(ctx, client.ObjectKey{Name: nodeName}, lsn); err != nil {
			return false, nil
		}
		return lsn.Status.State == v1.StateReady && lsn.Status.Pools[v1.PoolNameHDD].FreeCapacityBytes == 20<<30, nil
	})

	pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "data"}, Spec: corev1.PersistentVolumeClaimSpec{
		AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, StorageClassName: &sc.Name,
		Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}}}
	if _, err := h.Clientset.CoreV1().PersistentVolumeClaims(ns).Create(ctx, pvc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"}, Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "db", Image: "busybox"}},
		Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}}}}
	created, err := h.Clientset.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if created.Spec.SchedulerName != v1.SchedulerName {
		t.Fatalf("the webhook did not route the pod: schedulerName %q", created.Spec.SchedulerName)
	}

	eventually(t, "the pod bound to the node", 120*time.Second, func(ctx context.Context) (bool, error) {
		p, err := h.Clientset.CoreV1().Pods(ns).Get(ctx, "db", metav1.GetOptions{})
		return err == nil && p.Spec.NodeName == nodeName, nil
	})
	bound, err := h.Clientset.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data", metav1.GetOptions{})
	if err != nil || bound.Status.Phase != corev1.ClaimBound {
		t.Fatalf("claim not bound: %v %+v", err, bound.Status)
	}
	volumeName := bound.Spec.VolumeName
	pv, err := h.Clientset.CoreV1().PersistentVolumes().Get(ctx, volumeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pv.Spec.NodeAffinity != nil {
		t.Errorf("PV has node affinity %v: it must stay movable", pv.Spec.NodeAffinity)
	}
	lv := &v1.LocalVolume{}
	if err := h.Client.Get(ctx, client.ObjectKey{Name: volumeName}, lv); err != nil || lv.Status.State != v1.StateReady {
		t.Fatalf("LocalVolume %s: %v %+v", volumeName, err, lv.Status)
	}

	// Play kubelet: stage, publish, write, read.
	conn, err := grpc.NewClient("unix://"+h.NodeSocket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	node := csi.NewNodeClient(conn)
	mountCap := &csi.VolumeCapability{AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: "xfs"}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER}}
	staging, target := filepath.Join(h.Work, "kubelet", "staging"), filepath.Join(h.Work, "kubelet", "target")
	if _, err := node.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: volumeName, StagingTargetPath: staging, VolumeCapability: mountCap, VolumeContext: pv.Spec.CSI.VolumeAttributes}); err != nil {
		t.Fatalf("NodeStageVolume: %v\n%s", err, h.Logs())
	}
	if _, err := node.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: volumeName, StagingTargetPath: staging, TargetPath: target, VolumeCapability: mountCap}); err != nil {
		t.Fatalf("NodePublishVolume: %v", err)
	}
	want := []byte("hello from a local volume\n")
	if err := os.WriteFile(filepath.Join(target, "hello.txt"), want, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(staging, "hello.txt")); err != nil || string(got) != string(want) {
		t.Fatalf("read back %q, %v", got, err)
	}
	sizeBefore := fsSize(t, target)

	// Expand the claim: external-resizer → ControllerExpandVolume → the
	// agent grows the file and the loop device; kubelet's part is
	// NodeExpandVolume.
	bound.Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse("2Gi")
	if _, err := h.Clientset.CoreV1().PersistentVolumeClaims(ns).Update(ctx, bound, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the PV and volume grown", 120*time.Second, func(ctx context.Context) (bool, error) {
		pv, err := h.Clientset.CoreV1().PersistentVolumes().Get(ctx, volumeName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		q := pv.Spec.Capacity[corev1.ResourceStorage]
		return q.Value() >= 2<<30, nil
	})
	if _, err := node.NodeExpandVolume(ctx, &csi.NodeExpandVolumeRequest{VolumeId: volumeName, VolumePath: target, VolumeCapability: mountCap}); err != nil {
		t.Fatalf("NodeExpandVolume: %v", err)
	}
	if after := fsSize(t, target); after < sizeBefore+(900<<20) {
		t.Errorf("filesystem %d bytes after expansion, was %d", after, sizeBefore)
	}
	if got, err := os.ReadFile(filepath.Join(target, "hello.txt")); err != nil || string(got) != string(want) {
		t.Fatalf("data after expansion %q, %v", got, err)
	}

	// Tear down like kubelet, then delete the claim: the space comes back.
	if _, err := node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: volumeName, TargetPath: target}); err != nil {
		t.Fatal(err)
	}
	if _, err := node.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: volumeName, StagingTargetPath: staging}); err != nil {
		t.Fatal(err)
	}
	if err := h.Clientset.CoreV1().Pods(ns).Delete(ctx, "db", metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))}); err != nil {
		t.Fatal(err)
	}
	if err := h.Clientset.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, "data", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the PV deleted and the pool free again", 120*time.Second, func(ctx context.Context) (bool, error) {
		_, err := h.Clientset.CoreV1().PersistentVolumes().Get(ctx, volumeName, metav1.GetOptions{})
		lsn := &v1.LocalStorageNode{}
		if gerr := h.Client.Get(ctx, client.ObjectKey{Name: nodeName}, lsn); gerr != nil {
			return false, nil
		}
		return apierrors.IsNotFound(err) && lsn.Status.Pools[v1.PoolNameHDD].FreeCapacityBytes == 20<<30, nil
	})
}

func fsSize(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Blocks) * int64(st.Bsize)
}

package localstorage

// Test fixtures: small chained builders for the objects the plugin reads, a
// plugin wired to informer stores the tests fill directly, an in-memory
// LocalVolumeGroup API behind a fake REST client, and helpers that walk the
// extension points the way the scheduler does.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	restfake "k8s.io/client-go/rest/fake"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	v1 "hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/internal/hwinformers"
	"hwameistor.io/local/internal/placement"
	"hwameistor.io/local/plugins/localstorage/apis/config"
)

const (
	testNS = "default"
	gi     = int64(1) << 30
)

// ---------------------------------------------------------------- pods

type podBuilder struct{ *corev1.Pod }

func makePod(name string) podBuilder {
	return podBuilder{&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS, UID: types.UID("uid-" + name)}}}
}

func (b podBuilder) withPVC(claims ...string) podBuilder {
	for _, c := range claims {
		b.Spec.Volumes = append(b.Spec.Volumes, corev1.Volume{Name: "vol-" + c, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: c},
		}})
	}
	return b
}

// withEphemeral adds a generic ephemeral volume; its claim is "<pod>-<volume>".
func (b podBuilder) withEphemeral(volume string) podBuilder {
	b.Spec.Volumes = append(b.Spec.Volumes, corev1.Volume{Name: volume, VolumeSource: corev1.VolumeSource{
		Ephemeral: &corev1.EphemeralVolumeSource{},
	}})
	return b
}

func (b podBuilder) withEmptyDir(volume string) podBuilder {
	b.Spec.Volumes = append(b.Spec.Volumes, corev1.Volume{Name: volume, VolumeSource: corev1.VolumeSource{
		EmptyDir: &corev1.EmptyDirVolumeSource{},
	}})
	return b
}

// ---------------------------------------------------------------- claims, volumes, classes

type pvcBuilder struct{ *corev1.PersistentVolumeClaim }

// makePVC returns a claim of class "hdd" (our driver, one replica) with UID
// "uid-<name>", so its volume key is "pvc-uid-<name>".
func makePVC(name string) pvcBuilder {
	return pvcBuilder{&corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS, UID: types.UID("uid-" + name)},
		Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: ptr("hdd"),
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("6Gi")}},
		},
	}}
}

func (b pvcBuilder) withClass(sc string) pvcBuilder { b.Spec.StorageClassName = ptr(sc); return b }
func (b pvcBuilder) withSize(q string) pvcBuilder {
	b.Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse(q)
	return b
}
func (b pvcBuilder) withoutSize() pvcBuilder { b.Spec.Resources.Requests = nil; return b }
func (b pvcBuilder) boundTo(pv string) pvcBuilder {
	b.Spec.VolumeName = pv
	b.Status.Phase = corev1.ClaimBound
	return b
}
func (b pvcBuilder) deleting() pvcBuilder {
	now := metav1.Now()
	b.DeletionTimestamp = &now
	return b
}

// key is the claim's volume key as the plugin computes it.
func (b pvcBuilder) key() string { return VolumeKey(b.PersistentVolumeClaim) }

func ptr[T any](v T) *T { return &v }

type scBuilder struct{ *storagev1.StorageClass }

func makeSC(name string) scBuilder {
	mode := storagev1.VolumeBindingWaitForFirstConsumer
	return scBuilder{&storagev1.StorageClass{
		ObjectMeta:        metav1.ObjectMeta{Name: name},
		Provisioner:       v1.DriverName,
		Parameters:        map[string]string{ParamPoolClass: "HDD", ParamPoolType: v1.PoolTypeRegular, ParamVolumeKind: v1.VolumeKindLVM, ParamReplicaNumber: "1"},
		VolumeBindingMode: &mode,
	}}
}

func (b scBuilder) with(k, v string) scBuilder { b.Parameters[k] = v; return b }
func (b scBuilder) provisioner(p string) scBuilder {
	b.Provisioner = p
	return b
}

func makePV(name, driver string) *corev1.PersistentVolume {
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeSpec{PersistentVolumeSource: corev1.PersistentVolumeSource{
			CSI: &corev1.CSIPersistentVolumeSource{Driver: driver, VolumeHandle: name},
		}},
	}
}

// ---------------------------------------------------------------- hwameistor.io objects

type lsnBuilder struct{ *v1.LocalStorageNode }

// makeLSN returns a Ready node without pools.
func makeLSN(name string) lsnBuilder {
	return lsnBuilder{&v1.LocalStorageNode{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1.GroupVersion.String(), Kind: "LocalStorageNode"},
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1.LocalStorageNodeSpec{Hostname: name},
		Status:     v1.LocalStorageNodeStatus{State: v1.StateReady, Pools: map[string]v1.LocalPool{}},
	}}
}

func (b lsnBuilder) zone(z string) lsnBuilder { b.Spec.Topo.Zone = z; return b }
func (b lsnBuilder) state(s v1.State) lsnBuilder {
	b.Status.State = s
	return b
}

// pool adds a pool with totalGi/freeGi and 100 free volume slots.
func (b lsnBuilder) pool(p placement.Pool, totalGi, freeGi int64) lsnBuilder {
	b.Status.Pools[p.Name()] = v1.LocalPool{
		Name: p.Name(), Class: p.Class(), Type: v1.PoolTypeRegular,
		TotalCapacityBytes: totalGi * gi, FreeCapacityBytes: freeGi * gi, UsedCapacityBytes: (totalGi - freeGi) * gi,
		TotalVolumeCount: 100, FreeVolumeCount: 100,
	}
	return b
}

func (b lsnBuilder) freeVolumes(p placement.Pool, n int64) lsnBuilder {
	lp := b.Status.Pools[p.Name()]
	lp.FreeVolumeCount = n
	b.Status.Pools[p.Name()] = lp
	return b
}

// volumeLimit sets pool p's volumeCapacityBytesLimit (the largest volume it
// takes).
func (b lsnBuilder) volumeLimit(p placement.Pool, limitGi int64) lsnBuilder {
	lp := b.Status.Pools[p.Name()]
	lp.VolumeCapacityBytesLimit = limitGi * gi
	b.Status.Pools[p.Name()] = lp
	return b
}

// listing records volumes the node's status counts in pool p.
func (b lsnBuilder) listing(p placement.Pool, volumes ...string) lsnBuilder {
	lp := b.Status.Pools[p.Name()]
	lp.Volumes = append(lp.Volumes, volumes...)
	b.Status.Pools[p.Name()] = lp
	return b
}

func (b lsnBuilder) clone() lsnBuilder { return lsnBuilder{b.DeepCopy()} }

type lvBuilder struct{ *v1.LocalVolume }

// makeLV returns a Ready one-replica HDD volume of claim, 6Gi, without
// replicas (add them with makeLVR or onNodes).
func makeLV(name, claim string) lvBuilder {
	return lvBuilder{&v1.LocalVolume{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1.GroupVersion.String(), Kind: "LocalVolume"},
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.LocalVolumeSpec{
			PoolName: v1.PoolNameHDD, RequiredCapacityBytes: 6 * gi, ReplicaNumber: 1, VolumeKind: v1.VolumeKindLVM,
			PersistentVolumeClaimNamespace: testNS, PersistentVolumeClaimName: claim,
		},
		Status: v1.LocalVolumeStatus{State: v1.StateReady},
	}}
}

// onNodes sets spec.config.replicas and spec.accessibility.
func (b lvBuilder) onNodes(nodes ...string) lvBuilder {
	b.Spec.Config = &v1.VolumeConfig{VolumeName: b.Name, RequiredCapacityBytes: b.Spec.RequiredCapacityBytes}
	for i, n := range nodes {
		b.Spec.Config.Replicas = append(b.Spec.Config.Replicas, v1.VolumeReplica{ID: int64(i + 1), Hostname: n, Primary: i == 0})
	}
	b.Spec.Accessibility.Nodes = nodes
	b.Spec.ReplicaNumber = int64(len(nodes))
	return b
}

func (b lvBuilder) migrating() lvBuilder {
	b.Annotations = map[string]string{v1.VolumeMigrateStateAnnotation: v1.VolumeMigrateStarted}
	return b
}
func (b lvBuilder) migratingTo(progress string) lvBuilder {
	b = b.migrating()
	b.Annotations[v1.MigrationProgressAnnotation] = progress
	return b
}

// unsynced makes a replica a migration's target still waiting for its copy.
func unsynced(r *v1.LocalVolumeReplica) *v1.LocalVolumeReplica {
	r.Status.Synced = false
	r.Annotations = map[string]string{v1.SyncPendingAnnotation: "m", v1.SyncSourceAnnotation: "node-a"}
	return r
}

// staged marks r staged by the CSI node service at minute m of a fixed day.
func staged(r *v1.LocalVolumeReplica, m int) *v1.LocalVolumeReplica {
	if r.Annotations == nil {
		r.Annotations = map[string]string{}
	}
	r.Annotations[v1.StagedAtAnnotation] = time.Date(2026, 11, 26, 8, m, 0, 0, time.UTC).Format(time.RFC3339Nano)
	return r
}

func (b lvBuilder) inGroup(g string) lvBuilder      { b.Spec.VolumeGroup = g; return b }
func (b lvBuilder) state(s v1.State) lvBuilder      { b.Status.State = s; return b }
func (b lvBuilder) toBeDeleted() lvBuilder          { b.Spec.Delete = true; return b }
func (b lvBuilder) claimNS(ns string) lvBuilder     { b.Spec.PersistentVolumeClaimNamespace = ns; return b }
func (b lvBuilder) sizeGi(n int64) lvBuilder        { b.Spec.RequiredCapacityBytes = n * gi; return b }
func (b lvBuilder) pool(p placement.Pool) lvBuilder { b.Spec.PoolName = p.Name(); return b }

func makeLVR(volume, node string, state v1.State) *v1.LocalVolumeReplica {
	return &v1.LocalVolumeReplica{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1.GroupVersion.String(), Kind: "LocalVolumeReplica"},
		ObjectMeta: metav1.ObjectMeta{Name: volume + "-" + node},
		Spec:       v1.LocalVolumeReplicaSpec{VolumeName: volume, NodeName: node, PoolName: v1.PoolNameHDD, RequiredCapacityBytes: 6 * gi},
		Status:     v1.LocalVolumeReplicaStatus{State: state, Synced: state == v1.StateReady},
	}
}

type lvgBuilder struct{ *v1.LocalVolumeGroup }

func makeLVG(name string) lvgBuilder {
	return lvgBuilder{&v1.LocalVolumeGroup{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1.GroupVersion.String(), Kind: "LocalVolumeGroup"},
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1.LocalVolumeGroupSpec{Namespace: testNS},
	}}
}

// placed adds a claim's entry; nodes may be empty (a provisioned volume's
// entry, or one not placed yet).
func (b lvgBuilder) placed(claim, volume string, p placement.Pool, sizeGi int64, nodes ...string) lvgBuilder {
	vi := v1.VolumeInfo{PersistentVolumeClaimName: claim, LocalVolumeName: volume}
	if len(nodes) > 0 {
		vi.Nodes, vi.PoolName, vi.RequiredCapacityBytes = nodes, p.Name(), sizeGi*gi
	}
	b.Spec.Volumes = append(b.Spec.Volumes, vi)
	return b
}

func (b lvgBuilder) pods(pods ...string) lvgBuilder {
	b.Spec.Pods = append(b.Spec.Pods, pods...)
	return b
}

// ---------------------------------------------------------------- the plugin under test

// fakeHandle implements the part of framework.Handle the plugin calls.
type fakeHandle struct {
	framework.Handle
	client    kubernetes.Interface
	informers informers.SharedInformerFactory
	recorder  *events.FakeRecorder

	mu        sync.Mutex
	activated []string // pods passed to Activate, "namespace/name"
}

func (h *fakeHandle) EventRecorder() events.EventRecorder {
	if h.recorder == nil {
		return nil
	}
	return h.recorder
}

// Activate records the pods the plugin sends back to the active queue.
func (h *fakeHandle) Activate(_ klog.Logger, pods map[string]*corev1.Pod) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for key := range pods {
		h.activated = append(h.activated, key)
	}
}

func (h *fakeHandle) ClientSet() kubernetes.Interface                        { return h.client }
func (h *fakeHandle) SharedInformerFactory() informers.SharedInformerFactory { return h.informers }

// testEnv is a plugin whose informers are never started: add() puts objects
// into their stores and, for the hwameistor.io kinds, calls the plugin's
// event handler as the running informer would.
type testEnv struct {
	t      testing.TB
	events *events.FakeRecorder // what the plugin recorded
	pl     *LocalStorage
	k8s    informers.SharedInformerFactory
	hw     *hwinformers.Factory
	api    *fakeGroupAPI
}

// defaultArgs are the args the scheduler's defaulting produces.
func defaultArgs() *config.LocalStorageArgs {
	return &config.LocalStorageArgs{
		ScoringStrategy:       config.ScoringStrategy{Type: config.Spread},
		PoolClassWeights:      map[string]int64{"HDD": 1, "SSD": 1, "NVMe": 1},
		ReservationTTLSeconds: 300,
	}
}

func newTestEnv(t testing.TB, args *config.LocalStorageArgs, objs ...runtime.Object) *testEnv {
	t.Helper()
	if args == nil {
		args = defaultArgs()
	}
	client := fake.NewSimpleClientset()
	k8s := informers.NewSharedInformerFactory(client, 0)
	hw := hwinformers.NewFactory(nil, 0)
	api := newFakeGroupAPI()
	rec := events.NewFakeRecorder(100)
	pl, err := newPlugin(args, &fakeHandle{client: client, informers: k8s, recorder: rec}, hw, api.client())
	if err == nil {
		pl.synced = func() bool { return true } // the tests fill the stores directly
	}
	if err != nil {
		t.Fatalf("newPlugin: %v", err)
	}
	e := &testEnv{t: t, pl: pl, k8s: k8s, hw: hw, api: api, events: rec}
	e.add(objs...)
	return e
}

func (e *testEnv) add(objs ...runtime.Object) {
	e.t.Helper()
	for _, o := range objs {
		var err error
		switch o := o.(type) {
		case *corev1.PersistentVolumeClaim:
			err = e.k8s.Core().V1().PersistentVolumeClaims().Informer().GetStore().Add(o)
		case *corev1.PersistentVolume:
			err = e.k8s.Core().V1().PersistentVolumes().Informer().GetStore().Add(o)
		case *storagev1.StorageClass:
			err = e.k8s.Storage().V1().StorageClasses().Informer().GetStore().Add(o)
		case *v1.LocalStorageNode:
			err = e.hw.LocalStorageNodes.GetIndexer().Add(o)
			e.pl.onNode(o)
		case *v1.LocalVolume:
			err = e.hw.LocalVolumes.GetIndexer().Add(o)
			e.pl.onVolume(o)
		case *v1.LocalVolumeReplica:
			err = e.hw.LocalVolumeReplicas.GetIndexer().Add(o)
		case *v1.LocalVolumeGroup:
			err = e.hw.LocalVolumeGroups.GetIndexer().Add(o)
			e.pl.onGroup(o)
		default:
			e.t.Fatalf("testEnv.add: unexpected %T", o)
		}
		if err != nil {
			e.t.Fatalf("adding %T: %v", o, err)
		}
	}
}

// reserved returns the bytes (in Gi) and count held in flight on node's pool.
func (e *testEnv) reserved(node string, p placement.Pool) (int64, int64) {
	b, n := e.pl.Cache().Reserved(node, p)
	return b / gi, n
}

func nodeInfo(name string) fwk.NodeInfo {
	ni := framework.NewNodeInfo()
	ni.SetNode(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}})
	return ni
}

// cycle is one scheduling cycle of one pod.
type cycle struct {
	e   *testEnv
	pod *corev1.Pod
	cs  *framework.CycleState
}

func (e *testEnv) cycle(pod *corev1.Pod) *cycle {
	return &cycle{e: e, pod: pod, cs: framework.NewCycleState()}
}

func (c *cycle) preFilter() (*framework.PreFilterResult, *fwk.Status) {
	return c.e.pl.PreFilter(context.Background(), c.cs, c.pod, nil)
}

func (c *cycle) filter(node string) *fwk.Status {
	return c.e.pl.Filter(context.Background(), c.cs, c.pod, nodeInfo(node))
}

func (c *cycle) reserve(node string) *fwk.Status {
	return c.e.pl.Reserve(context.Background(), c.cs, c.pod, node)
}

func (c *cycle) unreserve(node string) { c.e.pl.Unreserve(context.Background(), c.cs, c.pod, node) }

func (c *cycle) preBindPreFlight(node string) *fwk.Status {
	return c.e.pl.PreBindPreFlight(context.Background(), c.cs, c.pod, node)
}

func (c *cycle) preBind(node string) *fwk.Status {
	return c.e.pl.PreBind(context.Background(), c.cs, c.pod, node)
}

// toReserve runs PreFilter, Filter(node) and Reserve(node), failing the test
// if PreFilter or Filter do not admit the node.
func (c *cycle) toReserve(t testing.TB, node string) *fwk.Status {
	t.Helper()
	if _, st := c.preFilter(); !st.IsSuccess() {
		t.Fatalf("PreFilter: %v", st)
	}
	if st := c.filter(node); !st.IsSuccess() {
		t.Fatalf("Filter(%s): %v", node, st)
	}
	return c.reserve(node)
}

func (c *cycle) state(t testing.TB) *podState {
	t.Helper()
	s, err := getState(c.cs)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// ---------------------------------------------------------------- statuses

// want describes an expected status: its code and substrings of its message.
// The zero value (code Success) expects a nil or Success status.
type want struct {
	code     fwk.Code
	contains []string
}

func wantCode(code fwk.Code, contains ...string) *want { return &want{code: code, contains: contains} }

func checkStatus(t testing.TB, what string, got *fwk.Status, w *want) {
	t.Helper()
	if w == nil {
		w = &want{code: fwk.Success}
	}
	if got.Code() != w.code {
		t.Errorf("%s: got status %v, want code %v (with %q)", what, got, w.code, w.contains)
		return
	}
	for _, s := range w.contains {
		if !strings.Contains(got.Message(), s) {
			t.Errorf("%s: message %q does not contain %q", what, got.Message(), s)
		}
	}
}

// ---------------------------------------------------------------- the LocalVolumeGroup API

// fakeGroupAPI serves localvolumegroups from memory, with resourceVersion
// checks, and records every request.
type fakeGroupAPI struct {
	mu       sync.Mutex
	groups   map[string]*v1.LocalVolumeGroup
	requests []apiRequest
	// beforePost, when set, runs before a POST is served (simulating a
	// concurrent writer); failWith, when set, answers every request.
	beforePost func(*fakeGroupAPI)
	failWith   *apierrors.StatusError
	rv         int
}

type apiRequest struct {
	verb, name string
	body       *v1.LocalVolumeGroup
}

func newFakeGroupAPI() *fakeGroupAPI {
	return &fakeGroupAPI{groups: map[string]*v1.LocalVolumeGroup{}}
}

const groupsPath = "/apis/hwameistor.io/v1alpha1/localvolumegroups"

func (a *fakeGroupAPI) client() *restfake.RESTClient {
	return &restfake.RESTClient{
		NegotiatedSerializer: serializer.NewCodecFactory(hwinformers.Scheme).WithoutConversion(),
		GroupVersion:         v1.GroupVersion,
		VersionedAPIPath:     "/apis/hwameistor.io/v1alpha1",
		Client:               restfake.CreateHTTPClient(a.serve),
	}
}

// put stores a group as if created earlier.
func (a *fakeGroupAPI) put(g *v1.LocalVolumeGroup) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.store(g.DeepCopy())
}

func (a *fakeGroupAPI) store(g *v1.LocalVolumeGroup) {
	a.rv++
	g.ResourceVersion = fmt.Sprint(a.rv)
	a.groups[g.Name] = g
}

func (a *fakeGroupAPI) get(name string) *v1.LocalVolumeGroup {
	a.mu.Lock()
	defer a.mu.Unlock()
	if g := a.groups[name]; g != nil {
		return g.DeepCopy()
	}
	return nil
}

// writes returns the POST and PUT requests.
func (a *fakeGroupAPI) writes() []apiRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []apiRequest
	for _, r := range a.requests {
		if r.verb != http.MethodGet {
			out = append(out, r)
		}
	}
	return out
}

func (a *fakeGroupAPI) serve(req *http.Request) (*http.Response, error) {
	if beforePost := a.takeBeforePost(req); beforePost != nil {
		beforePost(a)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	name := strings.TrimPrefix(strings.TrimPrefix(req.URL.Path, groupsPath), "/")
	rec := apiRequest{verb: req.Method, name: name}
	if req.Body != nil {
		data, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		if len(data) > 0 {
			rec.body = &v1.LocalVolumeGroup{}
			if err := json.Unmarshal(data, rec.body); err != nil {
				return nil, err
			}
			if name == "" {
				rec.name = rec.body.Name
			}
		}
	}
	a.requests = append(a.requests, rec)
	if !strings.HasPrefix(req.URL.Path, groupsPath) {
		return statusResponse(apierrors.NewBadRequest("unexpected path " + req.URL.Path)), nil
	}
	if a.failWith != nil {
		return statusResponse(a.failWith), nil
	}
	gr := v1.Resource("localvolumegroups")
	switch req.Method {
	case http.MethodGet:
		g := a.groups[name]
		if g == nil {
			return statusResponse(apierrors.NewNotFound(gr, name)), nil
		}
		return objectResponse(http.StatusOK, g), nil
	case http.MethodPost:
		if a.groups[rec.name] != nil {
			return statusResponse(apierrors.NewAlreadyExists(gr, rec.name)), nil
		}
		g := rec.body.DeepCopy()
		a.store(g)
		return objectResponse(http.StatusCreated, g), nil
	case http.MethodPut:
		cur := a.groups[name]
		if cur == nil {
			return statusResponse(apierrors.NewNotFound(gr, name)), nil
		}
		if rec.body.ResourceVersion != cur.ResourceVersion {
			return statusResponse(apierrors.NewConflict(gr, name, fmt.Errorf("resourceVersion %s is not %s", rec.body.ResourceVersion, cur.ResourceVersion))), nil
		}
		g := rec.body.DeepCopy()
		a.store(g)
		return objectResponse(http.StatusOK, g), nil
	}
	return statusResponse(apierrors.NewMethodNotSupported(gr, req.Method)), nil
}

func (a *fakeGroupAPI) takeBeforePost(req *http.Request) func(*fakeGroupAPI) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if req.Method != http.MethodPost || a.beforePost == nil {
		return nil
	}
	f := a.beforePost
	a.beforePost = nil
	return f
}

func objectResponse(code int, obj runtime.Object) *http.Response {
	data, err := json.Marshal(obj)
	if err != nil {
		panic(err)
	}
	return &http.Response{
		StatusCode: code,
		Header:     http.Header{"Content-Type": []string{runtime.ContentTypeJSON}},
		Body:       io.NopCloser(bytes.NewReader(data)),
	}
}

func statusResponse(err *apierrors.StatusError) *http.Response {
	st := err.ErrStatus
	st.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Status"}
	return objectResponse(int(st.Code), &st)
}

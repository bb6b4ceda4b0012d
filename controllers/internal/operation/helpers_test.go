package operation_test

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	v1 "hwameistor.io/local/api/v1alpha1"
)

// t0 is the creation time the tests count from.
var t0 = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

// at is t0+d as an object's creation time.
func at(d time.Duration) metav1.Time { return metav1.NewTime(t0.Add(d)) }

func newScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := v1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	return scheme
}

// newClient is a fake client holding objs (their status and metadata as
// given), with the operations' status subresource, calling funcs.
func newClient(t *testing.T, funcs interceptor.Funcs, objs ...client.Object) client.WithWatch {
	t.Helper()
	return fake.NewClientBuilder().WithScheme(newScheme(t)).
		WithStatusSubresource(&v1.LocalVolumeMigrate{}, &v1.LocalVolumeConvert{}, &v1.LocalVolumeExpand{}).
		WithObjects(objs...).WithInterceptorFuncs(funcs).Build()
}

func objectMeta(name string, created metav1.Time) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, CreationTimestamp: created, UID: types.UID("uid-" + name), Generation: 1}
}

// migration of volume (status.volumes: group, when set).
func migration(name string, created metav1.Time, state v1.State, volume string, group ...string) *v1.LocalVolumeMigrate {
	return &v1.LocalVolumeMigrate{ObjectMeta: objectMeta(name, created),
		Spec:   v1.LocalVolumeMigrateSpec{VolumeName: volume, SourceNode: "src"},
		Status: v1.LocalVolumeMigrateStatus{State: state, Volumes: group}}
}

func conversion(name string, created metav1.Time, state v1.State, volume string) *v1.LocalVolumeConvert {
	return &v1.LocalVolumeConvert{ObjectMeta: objectMeta(name, created),
		Spec:   v1.LocalVolumeConvertSpec{VolumeName: volume, ReplicaNumber: 2},
		Status: v1.LocalVolumeConvertStatus{State: state}}
}

func expansion(name string, created metav1.Time, state v1.State, volume string) *v1.LocalVolumeExpand {
	return &v1.LocalVolumeExpand{ObjectMeta: objectMeta(name, created),
		Spec:   v1.LocalVolumeExpandSpec{VolumeName: volume, RequiredCapacityBytes: 2 << 30},
		Status: v1.LocalVolumeExpandStatus{State: state}}
}

// drain returns the events recorded since the last drain.
func drain(rec *record.FakeRecorder) []string {
	var out []string
	for {
		select {
		case e := <-rec.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

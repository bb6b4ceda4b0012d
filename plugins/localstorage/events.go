package localstorage

import (
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
)

// ReasonInvalidStorageClass is the Warning Event on a claim whose
// StorageClass has a parameter the driver rejects. The pod's
// FailedScheduling Event says the same, but the claim is where a user
// looks at a storage problem, and where `kubectl describe pvc` shows it.
const ReasonInvalidStorageClass = "InvalidStorageClass"

// warnInvalidClass records err on pvc. Repeats of the same Event (one per
// scheduling attempt) are folded into one series by the events library.
func (pl *LocalStorage) warnInvalidClass(pvc *corev1.PersistentVolumeClaim, sc *storagev1.StorageClass, err error) {
	if pl.handle == nil || pl.handle.EventRecorder() == nil {
		return
	}
	pl.handle.EventRecorder().Eventf(pvc, sc, corev1.EventTypeWarning, ReasonInvalidStorageClass, "Scheduling",
		"%v; pods using this claim stay Pending until StorageClass %s is fixed (its parameters cannot be edited: delete and recreate it)", err, sc.Name)
}

package localstorage

import corev1 "k8s.io/api/core/v1"

// VolumeKey is the name the claim's LocalVolume has (or will have): the bound
// PV's name, else external-provisioner's default "pvc-<claim UID>". The
// ledger and the LocalVolumeGroup use it before the volume exists.
func VolumeKey(pvc *corev1.PersistentVolumeClaim) string {
	if pvc.Spec.VolumeName != "" {
		return pvc.Spec.VolumeName
	}
	return provisionalKey(pvc)
}

func provisionalKey(pvc *corev1.PersistentVolumeClaim) string { return "pvc-" + string(pvc.UID) }

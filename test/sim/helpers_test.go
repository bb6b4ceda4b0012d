package sim

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

func metavOpts(fieldSelector string) metav1.ListOptions {
	return metav1.ListOptions{FieldSelector: fieldSelector}
}

// Package kubernetestest adapts client-go's fake clientset to the Kubernetes catalog's Client, for
// tests. Only tests import it, so the clientset stays out of the a8 binary.
package kubernetestest

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	k8s "k8s.io/client-go/kubernetes"

	"github.com/a8fabric/a8/internal/catalog/kubernetes"
)

// Client returns a catalog client over cs (a fake.Clientset, or any clientset).
func Client(cs k8s.Interface) kubernetes.Client { return client{cs} }

type client struct{ cs k8s.Interface }

func (c client) ListPods(ctx context.Context, ns string, o metav1.ListOptions) (*corev1.PodList, error) {
	return c.cs.CoreV1().Pods(ns).List(ctx, o)
}

func (c client) WatchPods(ctx context.Context, ns string, o metav1.ListOptions) (watch.Interface, error) {
	return c.cs.CoreV1().Pods(ns).Watch(ctx, o)
}

func (c client) ListEndpointSlices(ctx context.Context, ns string, o metav1.ListOptions) (*discoveryv1.EndpointSliceList, error) {
	return c.cs.DiscoveryV1().EndpointSlices(ns).List(ctx, o)
}

func (c client) WatchEndpointSlices(ctx context.Context, ns string, o metav1.ListOptions) (watch.Interface, error) {
	return c.cs.DiscoveryV1().EndpointSlices(ns).Watch(ctx, o)
}

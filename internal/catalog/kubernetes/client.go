package kubernetes

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
)

// Client lists and watches the two kinds of objects the catalog follows. NewClient makes one for
// an API server; kubernetestest adapts client-go's fake clientset to it.
//
// The catalog does not use client-go's generated clientset and informer factory: they link every
// API group Kubernetes has (and register them all at start), which made the a8 binary 20 MB larger
// and every a8 process, sidecars included, about 9 MiB larger in memory, for two kinds.
type Client interface {
	ListPods(ctx context.Context, namespace string, opts metav1.ListOptions) (*corev1.PodList, error)
	WatchPods(ctx context.Context, namespace string, opts metav1.ListOptions) (watch.Interface, error)
	ListEndpointSlices(ctx context.Context, namespace string, opts metav1.ListOptions) (*discoveryv1.EndpointSliceList, error)
	WatchEndpointSlices(ctx context.Context, namespace string, opts metav1.ListOptions) (watch.Interface, error)
}

// scheme knows the kinds the catalog reads, and nothing else.
var (
	scheme      = runtime.NewScheme()
	codecs      = serializer.NewCodecFactory(scheme)
	paramCodec  = runtime.NewParameterCodec(scheme)
	schemeError = func() error {
		if err := corev1.AddToScheme(scheme); err != nil {
			return err
		}
		return discoveryv1.AddToScheme(scheme)
	}()
)

// restClient is a Client over the API server's REST API: pods in the core group (/api/v1),
// EndpointSlices in discovery.k8s.io/v1 (/apis).
type restClient struct {
	core, discovery rest.Interface
}

func newRESTClient(rc *rest.Config) (*restClient, error) {
	if schemeError != nil {
		return nil, schemeError
	}
	client := func(apiPath string, gv schema.GroupVersion) (rest.Interface, error) {
		c := rest.CopyConfig(rc)
		c.APIPath = apiPath
		c.GroupVersion = &gv
		c.NegotiatedSerializer = codecs.WithoutConversion()
		if c.UserAgent == "" {
			c.UserAgent = rest.DefaultKubernetesUserAgent()
		}
		return rest.RESTClientFor(c)
	}
	core, err := client("/api", corev1.SchemeGroupVersion)
	if err != nil {
		return nil, fmt.Errorf("core/v1: %w", err)
	}
	disc, err := client("/apis", discoveryv1.SchemeGroupVersion)
	if err != nil {
		return nil, fmt.Errorf("discovery.k8s.io/v1: %w", err)
	}
	return &restClient{core: core, discovery: disc}, nil
}

func (c *restClient) ListPods(ctx context.Context, ns string, opts metav1.ListOptions) (*corev1.PodList, error) {
	out := &corev1.PodList{}
	return out, list(ctx, c.core, "pods", ns, opts, out)
}

func (c *restClient) WatchPods(ctx context.Context, ns string, opts metav1.ListOptions) (watch.Interface, error) {
	return watchOf(ctx, c.core, "pods", ns, opts)
}

func (c *restClient) ListEndpointSlices(ctx context.Context, ns string, opts metav1.ListOptions) (*discoveryv1.EndpointSliceList, error) {
	out := &discoveryv1.EndpointSliceList{}
	return out, list(ctx, c.discovery, "endpointslices", ns, opts, out)
}

func (c *restClient) WatchEndpointSlices(ctx context.Context, ns string, opts metav1.ListOptions) (watch.Interface, error) {
	return watchOf(ctx, c.discovery, "endpointslices", ns, opts)
}

// list GETs a resource's list in a namespace ("": all of them) into out.
func list(ctx context.Context, c rest.Interface, resource, ns string, opts metav1.ListOptions, out runtime.Object) error {
	return c.Get().Namespace(ns).Resource(resource).VersionedParams(&opts, paramCodec).Do(ctx).Into(out)
}

// watchOf opens a watch of a resource in a namespace ("": all of them).
func watchOf(ctx context.Context, c rest.Interface, resource, ns string, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	return c.Get().Namespace(ns).Resource(resource).VersionedParams(&opts, paramCodec).Watch(ctx)
}

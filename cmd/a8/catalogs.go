package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/a8fabric/a8/internal/catalog"
	"github.com/a8fabric/a8/internal/catalog/eureka"
	"github.com/a8fabric/a8/internal/catalog/file"
	"github.com/a8fabric/a8/internal/catalog/kubernetes"
	"github.com/a8fabric/a8/internal/version"
)

// catalogFlags are the registry's catalogs: read-only sources of instances merged into each
// tenant's view (Amalgam8's --k8s_url, --k8s_token, --eureka_url, --fs_catalog, plus a8's own).
type catalogFlags struct {
	k8sURL, k8sToken, k8sCAFile string
	k8sNamespaces               listFlag
	eurekaURLs                  listFlag
	eurekaPoll                  time.Duration
	eurekaNamespace             string
	fsCatalog                   string
}

// listFlag is a repeatable flag whose values may also be comma-separated (as its environment
// variable's value is).
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

func (f *catalogFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.k8sURL, "k8s_url", "", "Kubernetes catalog: the API server's URL (empty with --k8s_namespaces: the in-cluster configuration); setting it enables the catalog")
	fs.StringVar(&f.k8sToken, "k8s_token", "", "Kubernetes catalog: bearer token (default: the pod's service account token)")
	fs.StringVar(&f.k8sCAFile, "k8s_ca_file", "", "Kubernetes catalog: CA file to verify the API server (default: the pod's service account CA, else the system's)")
	fs.Var(&f.k8sNamespaces, "k8s_namespaces", "Kubernetes catalog: namespaces to follow, as k8s_namespace or k8s_namespace=a8_namespace, comma-separated or repeated; * follows all, each into the a8 namespace of its name (default with --k8s_url: default); setting it enables the catalog")
	fs.Var(&f.eurekaURLs, "eureka_url", "Eureka catalog: service URL of a remote Eureka server such as http://eureka:8761/eureka, repeated or comma-separated for the peers of one cluster")
	fs.DurationVar(&f.eurekaPoll, "eureka_poll", 30*time.Second, "Eureka catalog: how often the remote Eureka is polled")
	fs.StringVar(&f.eurekaNamespace, "eureka_namespace", "default", "Eureka catalog: the a8 namespace the remote Eureka's instances are listed in")
	fs.StringVar(&f.fsCatalog, "fs_catalog", "", "file catalog: a directory of <namespace>.json files, {\"instances\": [registration bodies]}, re-read when they change")
}

func (f *catalogFlags) validate() error {
	if _, err := f.namespaceMap(); err != nil {
		return err
	}
	if len(f.eurekaURLs) > 0 && f.eurekaPoll < time.Second {
		return fmt.Errorf("--eureka_poll %v: at least 1s", f.eurekaPoll)
	}
	if len(f.eurekaURLs) > 0 && f.eurekaNamespace == "" {
		return errors.New("--eureka_namespace: give the a8 namespace of the remote Eureka's instances")
	}
	if len(f.eurekaURLs) > 0 {
		if _, err := eureka.New(eureka.Config{URLs: f.eurekaURLs}); err != nil { // checks the URLs
			return err
		}
	}
	return nil
}

// namespaceMap parses --k8s_namespaces into Kubernetes namespace → a8 namespace.
func (f *catalogFlags) namespaceMap() (map[string]string, error) {
	m := map[string]string{}
	for _, v := range f.k8sNamespaces {
		k8s, a8, mapped := strings.Cut(v, "=")
		k8s, a8 = strings.TrimSpace(k8s), strings.TrimSpace(a8)
		if k8s == "" || (mapped && a8 == "") || (k8s == kubernetes.AllNamespaces && mapped) {
			return nil, fmt.Errorf("--k8s_namespaces %q: use k8s_namespace, k8s_namespace=a8_namespace or *", v)
		}
		m[k8s] = a8
	}
	return m, nil
}

// open builds the catalogs the flags ask for, in the order that settles an id clash: Kubernetes,
// Eureka, file.
func (f *catalogFlags) open(log *slog.Logger) ([]catalog.Catalog, error) {
	var cats []catalog.Catalog
	if f.k8sURL != "" || len(f.k8sNamespaces) > 0 {
		kubernetes.SetLogger(log.With("component", "client-go"))
		client, host, err := kubernetes.NewClient(kubernetes.ClientConfig{URL: f.k8sURL, Token: f.k8sToken, CAFile: f.k8sCAFile, UserAgent: "a8/" + version.String()})
		if err != nil {
			return nil, err
		}
		namespaces, err := f.namespaceMap()
		if err != nil {
			return nil, err
		}
		c, err := kubernetes.New(kubernetes.Config{Client: client, Namespaces: namespaces, Server: host, Logger: log.With("component", "catalog", "catalog", "kubernetes")})
		if err != nil {
			return nil, err
		}
		cats = append(cats, c)
	}
	if len(f.eurekaURLs) > 0 {
		c, err := eureka.New(eureka.Config{URLs: f.eurekaURLs, Namespace: f.eurekaNamespace, Poll: f.eurekaPoll, Logger: log.With("component", "catalog", "catalog", "eureka")})
		if err != nil {
			return nil, err
		}
		cats = append(cats, c)
	}
	if f.fsCatalog != "" {
		c, err := file.New(file.Config{Dir: f.fsCatalog, Logger: log.With("component", "catalog", "catalog", "file")})
		if err != nil {
			return nil, err
		}
		cats = append(cats, c)
	}
	for _, c := range cats {
		log.Info("catalog enabled: its instances are listed read-only beside the registered ones", "catalog", c.Name())
	}
	return cats, nil
}

// catalogRuns returns the catalogs' Run functions, for serve's background loops.
func catalogRuns(cats []catalog.Catalog) []func(context.Context) error {
	runs := make([]func(context.Context) error, len(cats))
	for i, c := range cats {
		runs[i] = c.Run
	}
	return runs
}

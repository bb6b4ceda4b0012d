// Command hwameistor-controllers runs the hwameistor.io controllers and the
// admission webhook that routes pods with hwameistor volumes to
// hwameistor-scheduler.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"hwameistor.io/local/api/v1alpha1"
	"hwameistor.io/local/controllers/certs"
	"hwameistor.io/local/controllers/convert"
	"hwameistor.io/local/controllers/evictor"
	"hwameistor.io/local/controllers/expand"
	"hwameistor.io/local/controllers/failover"
	"hwameistor.io/local/controllers/migrate"
	"hwameistor.io/local/controllers/node"
	"hwameistor.io/local/controllers/nodecerts"
	"hwameistor.io/local/controllers/rebuild"
	"hwameistor.io/local/controllers/volume"
	"hwameistor.io/local/controllers/volumegroup"
	"hwameistor.io/local/controllers/webhook"
	"hwameistor.io/local/csidriver/replication"
	"hwameistor.io/local/internal/profiling"
	"hwameistor.io/local/internal/restconfig"
)

// defaultNamespace is where manifests/ deploys us, used when POD_NAMESPACE is unset.
const defaultNamespace = "hwameistor"

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func main() {
	var metricsAddr, probeAddr, certDir, certSecret, webhookConfig, webhookService, certHosts string
	var webhookPort int
	var leaderElect, replicationCerts bool
	migrations := &migrate.Reconciler{}
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "address the metrics endpoint binds to (0 disables it)")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "address the /healthz and /readyz endpoints bind to")
	flag.IntVar(&webhookPort, "webhook-port", 9443, "port the admission webhook server listens on")
	flag.StringVar(&certDir, "webhook-cert-dir", "", "folder holding a webhook serving certificate managed by someone else (tls.crt, tls.key, reloaded on change); empty: the controllers issue and rotate their own in --webhook-cert-secret")
	flag.StringVar(&certSecret, "webhook-cert-secret", "hwameistor-controllers-webhook-cert", "Secret (in $POD_NAMESPACE) the controllers keep their self-signed webhook serving certificate in")
	flag.StringVar(&webhookConfig, "webhook-configuration", "hwameistor-pod-scheduler", "MutatingWebhookConfiguration whose caBundle the controllers keep in step with their certificate; empty: none")
	flag.StringVar(&webhookService, "webhook-service", "hwameistor-controllers", "Service (in $POD_NAMESPACE) the apiserver calls the webhook through; the certificate is issued for its DNS names")
	flag.StringVar(&certHosts, "webhook-cert-extra-hosts", "", "comma-separated extra DNS names or IP addresses for the issued certificate (a webhook configured with a URL)")
	flag.BoolVar(&replicationCerts, "replication-certs", true, "issue and renew the node agents' copy-stream certificates (controllers/nodecerts): the CA in Secret "+replication.CASecretName+", one Secret per node, and the Role "+replication.NodeCertRole+" that lets the agents read them")
	var rebuildAfter time.Duration
	flag.DurationVar(&rebuildAfter, "rebuild-after", rebuild.DefaultAfter, "how long the node of an HA volume's replica may be away (agent heartbeat expired, or Node deleted) before the replica is rebuilt on another node; negative: never")
	flag.BoolVar(&leaderElect, "leader-elect", false, "elect a leader (lease hwameistor-controllers) so only one replica reconciles")
	flag.IntVar(&migrations.MaxPerNode, "migrate-max-per-node", v1alpha1.MigrateDefaultMaxPerNode, "migrations copying from one node at once")
	flag.IntVar(&migrations.MaxTotal, "migrate-max-total", v1alpha1.MigrateDefaultMaxTotal, "migrations copying in the whole cluster at once")
	volumes := &volume.Reconciler{}
	flag.IntVar(&volumes.MaxResourceIDs, "drbd-max-resources", v1alpha1.DRBDDefaultMaxResources,
		fmt.Sprintf("HA volumes' DRBD resource ids, each a device minor and a port from %d", v1alpha1.DRBDBasePort))
	flag.DurationVar(&migrations.Deadline, "migrate-deadline", v1alpha1.MigrateDefaultDeadline, "how long a migration may take before it is rolled back and reported Failed")
	var apiFlags restconfig.Flags
	apiFlags.Bind(flag.CommandLine)
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	pprofAddr := profiling.Flag(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")

	// A certificate someone else manages must be there: say so plainly
	// instead of failing later inside the TLS setup.
	if certDir != "" {
		for _, f := range []string{"tls.crt", "tls.key"} {
			if _, err := os.Stat(filepath.Join(certDir, f)); err != nil {
				log.Error(err, "Webhook serving certificate missing: mount it there, or leave --webhook-cert-dir empty for a self-managed one", "dir", certDir, "file", f)
				os.Exit(1)
			}
		}
	}
	namespace := os.Getenv("POD_NAMESPACE")
	if namespace == "" {
		namespace = defaultNamespace
		log.Info("POD_NAMESPACE is not set; assuming the default namespace", "namespace", namespace)
	}

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	cfg, err := apiFlags.Config()
	if err != nil {
		log.Error(err, "Bad flags")
		os.Exit(2)
	}
	webhookOpts := ctrlwebhook.Options{Port: webhookPort, CertDir: certDir}
	var rotator *certs.Rotator
	if certDir == "" {
		direct, err := client.New(cfg, client.Options{Scheme: scheme})
		if err != nil {
			log.Error(err, "Cannot create a client")
			os.Exit(1)
		}
		rotator = &certs.Rotator{
			Client:  direct,
			Secret:  types.NamespacedName{Namespace: namespace, Name: certSecret},
			Webhook: webhookConfig,
			Hosts:   append(certs.ServiceHosts(webhookService, namespace), splitList(certHosts)...),
			Log:     ctrl.Log.WithName("webhook-certs"),
		}
		webhookOpts.TLSOpts = []func(*tls.Config){rotator.TLSOpt}
	}
	webhookServer := ctrlwebhook.NewServer(webhookOpts)
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme,
		Metrics:                       metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress:        probeAddr,
		WebhookServer:                 webhookServer,
		LeaderElection:                leaderElect,
		LeaderElectionID:              "hwameistor-controllers",
		LeaderElectionNamespace:       namespace,
		LeaderElectionReleaseOnCancel: true,
		// The node agents' heartbeat Leases, and only those of our
		// namespace: not every kubelet's.
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&coordinationv1.Lease{}: {Namespaces: map[string]cache.Config{namespace: {}}},
			// The node certificate Secrets (controllers/nodecerts),
			// and only those: no other Secret is ever cached.
			&corev1.Secret{}: {Namespaces: map[string]cache.Config{namespace: {}},
				Label: labels.SelectorFromSet(nodecerts.NodeCertLabels())},
		}},
	})
	if err != nil {
		log.Error(err, "Cannot create the manager")
		os.Exit(1)
	}

	reader := webhook.CacheFirstReader{Cache: mgr.GetCache(), Live: mgr.GetAPIReader()}
	webhook.Register(mgr, webhook.NewPodSchedulerMutator(reader, scheme, namespace))

	// Start the informers the webhook reads with the manager, not on the first
	// admission request (which would then wait for a full list).
	ctx := ctrl.SetupSignalHandler()
	go func() {
		if err := profiling.Serve(ctx, *pprofAddr); err != nil {
			ctrl.Log.Error(err, "Cannot serve pprof", "address", *pprofAddr)
		}
	}()
	for _, obj := range []client.Object{&corev1.PersistentVolumeClaim{}, &corev1.PersistentVolume{}, &storagev1.StorageClass{}, &corev1.Namespace{}} {
		if _, err := mgr.GetCache().GetInformer(ctx, obj); err != nil {
			log.Error(err, "Cannot set up an informer", "type", fmt.Sprintf("%T", obj))
			os.Exit(1)
		}
	}

	volumes.Client, volumes.Recorder = mgr.GetClient(), mgr.GetEventRecorderFor("hwameistor-volume")
	if err := volumes.SetupWithManager(ctx, mgr); err != nil {
		log.Error(err, "Cannot set up the LocalVolume controller")
		os.Exit(1)
	}
	if err := (&volumegroup.Reconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorderFor("hwameistor-volumegroup")}).SetupWithManager(ctx, mgr); err != nil {
		log.Error(err, "Cannot set up the LocalVolumeGroup controller")
		os.Exit(1)
	}
	if err := (&node.Reconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorderFor("hwameistor-node"), Namespace: namespace}).SetupWithManager(ctx, mgr); err != nil {
		log.Error(err, "Cannot set up the LocalStorageNode controller")
		os.Exit(1)
	}

	migrations.Client, migrations.Recorder = mgr.GetClient(), mgr.GetEventRecorderFor("hwameistor-migrate")
	if err := migrations.SetupWithManager(mgr); err != nil {
		log.Error(err, "Cannot set up the LocalVolumeMigrate controller")
		os.Exit(1)
	}
	if err := (&evictor.Reconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorderFor("hwameistor-evictor")}).SetupWithManager(ctx, mgr); err != nil {
		log.Error(err, "Cannot set up the evictor")
		os.Exit(1)
	}

	if err := (&rebuild.Reconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorderFor("hwameistor-rebuild"), After: rebuildAfter}).SetupWithManager(ctx, mgr); err != nil {
		log.Error(err, "Cannot set up the rebuild controller")
		os.Exit(1)
	}
	if err := (&failover.Reconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorderFor("hwameistor-failover")}).SetupWithManager(ctx, mgr); err != nil {
		log.Error(err, "Cannot set up the failover controller")
		os.Exit(1)
	}

	if err := (&convert.Reconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorderFor("hwameistor-convert")}).SetupWithManager(mgr); err != nil {
		log.Error(err, "Cannot set up the LocalVolumeConvert controller")
		os.Exit(1)
	}
	if err := (&expand.Reconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorderFor("hwameistor-expand")}).SetupWithManager(mgr); err != nil {
		log.Error(err, "Cannot set up the LocalVolumeExpand controller")
		os.Exit(1)
	}

	if replicationCerts {
		if err := (&nodecerts.Reconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Namespace: namespace}).SetupWithManager(mgr); err != nil {
			log.Error(err, "Cannot set up the replication certificate controller")
			os.Exit(1)
		}
	}
	if rotator != nil {
		utilruntime.Must(mgr.Add(rotator))
		utilruntime.Must(mgr.AddReadyzCheck("webhook-certificate", rotator.Ready))
	}
	utilruntime.Must(mgr.AddHealthzCheck("ping", healthz.Ping))
	utilruntime.Must(mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()))
	// Not ready before the caches are: the Service would send admission
	// requests that wait for a full list and time out (and so fail open).
	utilruntime.Must(mgr.AddReadyzCheck("informers", func(req *http.Request) error {
		c, cancel := context.WithTimeout(req.Context(), 200*time.Millisecond)
		defer cancel()
		if !mgr.GetCache().WaitForCacheSync(c) {
			return errors.New("informer caches have not synced yet")
		}
		return nil
	}))

	log.Info("Starting", "namespace", namespace, "webhookPort", webhookPort)
	if err := mgr.Start(ctx); err != nil {
		log.Error(err, "Manager stopped with an error")
		os.Exit(1)
	}
}

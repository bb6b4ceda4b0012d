package replication

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

func secret(data map[string][]byte) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "hwameistor", Name: "replication-key"}, Data: data}
}

func TestLoadOrCreateKey(t *testing.T) {
	existing := []byte("an existing key of 32 bytes.....")
	winner := []byte("the key another agent created...")
	tests := []struct {
		name      string
		objects   []client.Object
		intercept *interceptor.Funcs
		want      []byte // nil: a new random key
		wantMsg   string
	}{
		{name: "creates the Secret when missing"},
		{name: "reads an existing Secret", objects: []client.Object{secret(map[string][]byte{KeyField: existing})}, want: existing},
		{
			name: "another agent created it first: its key is read back",
			intercept: &interceptor.Funcs{Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
				if err := c.Create(ctx, secret(map[string][]byte{KeyField: winner})); err != nil {
					return err
				}
				return c.Create(ctx, obj, opts...) // AlreadyExists
			}},
			want: winner,
		},
		{name: "a Secret without the key field is not overwritten", objects: []client.Object{secret(map[string][]byte{"other": existing})}, wantMsg: `data field "key" has 0 bytes`},
		{name: "a short key is refused", objects: []client.Object{secret(map[string][]byte{KeyField: []byte("short")})}, wantMsg: "want at least 16"},
		{
			name: "Get fails",
			intercept: &interceptor.Funcs{Get: func(context.Context, client.WithWatch, client.ObjectKey, client.Object, ...client.GetOption) error {
				return apierrors.NewForbidden(corev1.Resource("secrets"), "replication-key", errors.New("no RBAC"))
			}},
			wantMsg: "no RBAC",
		},
		{
			name: "Create fails",
			intercept: &interceptor.Funcs{Create: func(context.Context, client.WithWatch, client.Object, ...client.CreateOption) error {
				return errors.New("apiserver down")
			}},
			wantMsg: "apiserver down",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithObjects(tc.objects...)
			if tc.intercept != nil {
				b = b.WithInterceptorFuncs(*tc.intercept)
			}
			c := b.Build()
			ctx := context.Background()
			key, err := LoadOrCreateKey(ctx, c, "hwameistor", "replication-key")
			if tc.wantMsg != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantMsg) {
					t.Fatalf("key %x, err %v; want an error containing %q", key, err, tc.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.want != nil && !bytes.Equal(key, tc.want) {
				t.Errorf("key %q, want %q", key, tc.want)
			}
			if tc.want == nil && (len(key) != KeyBytes || bytes.Equal(key, make([]byte, KeyBytes))) {
				t.Errorf("new key %x: want %d random bytes", key, KeyBytes)
			}
			// Stored, and the next agent gets the same key.
			var s corev1.Secret
			if err := c.Get(ctx, client.ObjectKey{Namespace: "hwameistor", Name: "replication-key"}, &s); err != nil {
				t.Fatal(err)
			}
			again, err := LoadOrCreateKey(ctx, c, "hwameistor", "replication-key")
			if err != nil || !bytes.Equal(again, key) || !bytes.Equal(s.Data[KeyField], key) {
				t.Errorf("stored %x, loaded again %x (%v); want %x", s.Data[KeyField], again, err, key)
			}
		})
	}
}

// TestLoadOrCreateKeyConcurrently starts many agents at once: they all end
// with one key.
func TestLoadOrCreateKeyConcurrently(t *testing.T) {
	c := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).Build()
	keys := make([][]byte, 16)
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() { keys[i], errs[i] = LoadOrCreateKey(context.Background(), c, "hwameistor", "replication-key") })
	}
	wg.Wait()
	for i := range keys {
		if errs[i] != nil || !bytes.Equal(keys[i], keys[0]) {
			t.Fatalf("agent %d: key %x, %v; agent 0 has %x", i, keys[i], errs[i], keys[0])
		}
	}
}

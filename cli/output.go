package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/printers"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
)

// outputFlags is -o as kubectl has it: a table by default, "wide" for more
// columns, and json, yaml, name, jsonpath and go-template through
// cli-runtime's PrintFlags, so scripts written for `kubectl get` work.
type outputFlags struct {
	print     *genericclioptions.PrintFlags
	noHeaders bool
}

// newOutputFlags offers -o name only when withName: a report that is no
// API object has no resource/name to print.
func newOutputFlags(withName bool) *outputFlags {
	pf := genericclioptions.NewPrintFlags("")
	if !withName {
		pf.NamePrintFlags = nil
	}
	return &outputFlags{print: pf}
}

func (o *outputFlags) addFlags(cmd *cobra.Command) {
	o.print.AddFlags(cmd)
	formats := append([]string{"wide"}, o.print.AllowedFormats()...)
	cmd.Flags().Lookup("output").Usage = fmt.Sprintf("Output format. One of: (%s). Default: a table.", strings.Join(formats, ", "))
	cmd.Flags().BoolVar(&o.noHeaders, "no-headers", false, "When using the default or wide output format, don't print headers.")
}

func (o *outputFlags) format() string { return strings.ToLower(*o.print.OutputFormat) }

// table says whether the output is the human-readable table.
func (o *outputFlags) table() bool { return o.format() == "" || o.format() == "wide" }

func (o *outputFlags) wide() bool { return o.format() == "wide" }

// printer returns the printer for -o; an unknown format fails here, before
// anything is read from the cluster.
func (o *outputFlags) printer() (printers.ResourcePrinter, error) {
	if o.table() {
		return printers.NewTablePrinter(printers.PrintOptions{Wide: o.wide(), NoHeaders: o.noHeaders}), nil
	}
	return o.print.ToPrinter()
}

// printObjects prints API objects for the non-table formats: one object
// alone when single (a command given one name, as `kubectl get KIND NAME`),
// otherwise a v1 List; -o name prints one line per object. Objects are
// printed as unstructured, as kubectl prints them, so jsonpath sees
// integers rather than floats.
func (o *outputFlags) printObjects(w io.Writer, objs []runtime.Object, single bool) error {
	p, err := o.printer()
	if err != nil {
		return err
	}
	items := make([]unstructured.Unstructured, 0, len(objs))
	for _, obj := range objs {
		u, err := toUnstructured(obj)
		if err != nil {
			return err
		}
		items = append(items, *u)
	}
	if o.format() == "name" || (single && len(items) == 1) {
		for i := range items {
			if err := p.PrintObj(&items[i], w); err != nil {
				return err
			}
		}
		return nil
	}
	list := &unstructured.UnstructuredList{Object: map[string]any{"apiVersion": "v1", "kind": "List", "metadata": map[string]any{}}, Items: items}
	return p.PrintObj(list, w)
}

// printCreated prints an object a command created: "KIND/NAME created" by
// default, as `kubectl create` does, or in the -o format.
func (o *outputFlags) printCreated(w io.Writer, obj runtime.Object) error {
	if !o.table() {
		return o.printObjects(w, []runtime.Object{obj}, true)
	}
	u, err := toUnstructured(obj)
	if err != nil {
		return err
	}
	return (&printers.NamePrinter{Operation: "created"}).PrintObj(u, w)
}

// toUnstructured converts obj, with its apiVersion and kind.
func toUnstructured(obj runtime.Object) (*unstructured.Unstructured, error) {
	if err := setKind(obj); err != nil {
		return nil, err
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	return &unstructured.Unstructured{Object: m}, nil
}

// setKind fills apiVersion and kind, which typed clients leave empty and
// the printers need (also inside a List).
func setKind(obj runtime.Object) error {
	if !obj.GetObjectKind().GroupVersionKind().Empty() {
		return nil
	}
	gvk, err := apiutil.GVKForObject(obj, scheme)
	if err != nil {
		return err
	}
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	return nil
}

// printTable prints t (the table formats), or says on stderr that there is
// nothing to show, as kubectl does.
func (o *outputFlags) printTable(out, errOut io.Writer, t *metav1.Table, nothing string) error {
	if len(t.Rows) == 0 {
		fmt.Fprintln(errOut, nothing)
		return nil
	}
	p, err := o.printer()
	if err != nil {
		return err
	}
	return p.PrintObj(t, out)
}

// column defines a table column; wide ones show only with -o wide.
func column(name string, wide bool) metav1.TableColumnDefinition {
	c := metav1.TableColumnDefinition{Name: name, Type: "string"}
	if wide {
		c.Priority = 1
	}
	return c
}

// row is a table row of string cells.
func row(obj runtime.Object, cells ...string) metav1.TableRow {
	r := metav1.TableRow{Cells: make([]any, len(cells))}
	for i, c := range cells {
		r.Cells[i] = c
	}
	if obj != nil {
		r.Object = runtime.RawExtension{Object: obj}
	}
	return r
}

// asObjects is items as the printers take them.
func asObjects[T runtime.Object](items []T) []runtime.Object {
	out := make([]runtime.Object, 0, len(items))
	for _, it := range items {
		out = append(out, it)
	}
	return out
}

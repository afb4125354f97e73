// Command kstatus reads Kubernetes objects as JSON on standard input (one object, or a
// List as `kubectl get -o json` prints it) and prints, for each, the status that
// sigs.k8s.io/cli-utils' kstatus computes — the library Flux's health checks use — as
// `<name> <status> <message>` lines. kvbind's tests use it to check that an
// IdentityBinding reads as GitOps tools will read it, in every phase.
package main

import (
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	data, err := io.ReadAll(in)
	if err != nil {
		return fmt.Errorf("reading the object: %w", err)
	}
	// The API machinery's own decoding: numbers become int64, as kstatus expects.
	object := &unstructured.Unstructured{}
	if err := object.UnmarshalJSON(data); err != nil {
		return fmt.Errorf("reading the object: %w", err)
	}
	if !object.IsList() {
		return report(out, object)
	}
	list, err := object.ToList()
	if err != nil {
		return fmt.Errorf("reading the list: %w", err)
	}
	for i := range list.Items {
		if err := report(out, &list.Items[i]); err != nil {
			return err
		}
	}
	return nil
}

func report(out io.Writer, u *unstructured.Unstructured) error {
	result, err := status.Compute(u)
	if err != nil {
		return fmt.Errorf("computing the status of %s: %w", u.GetName(), err)
	}
	fmt.Fprintf(out, "%s %s %s\n", u.GetName(), result.Status, result.Message)
	return nil
}

// Command kstatus reads Kubernetes objects as JSON on standard input (one object, or a
// List as `kubectl get -o json` prints it) and prints, for each, the status that
// sigs.k8s.io/cli-utils' kstatus computes — the library Flux's health checks use — as
// `<name> <status> <message>` lines. kvbind's tests use it to check that an
// IdentityBinding reads as GitOps tools will read it, in every phase.
package main

import (
	"encoding/json"
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
	var object map[string]any
	if err := json.NewDecoder(in).Decode(&object); err != nil {
		return fmt.Errorf("reading the object: %w", err)
	}
	items := []map[string]any{object}
	if list, ok := object["items"].([]any); ok {
		items = items[:0]
		for _, item := range list {
			if m, ok := item.(map[string]any); ok {
				items = append(items, m)
			}
		}
	}
	for _, item := range items {
		u := &unstructured.Unstructured{Object: item}
		result, err := status.Compute(u)
		if err != nil {
			return fmt.Errorf("computing the status of %s: %w", u.GetName(), err)
		}
		fmt.Fprintf(out, "%s %s %s\n", u.GetName(), result.Status, result.Message)
	}
	return nil
}

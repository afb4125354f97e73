// Command etcd is the etcd server, built from its Go module at the version
// k8s.io/kubernetes pins, so the test control plane needs no downloaded binary.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}

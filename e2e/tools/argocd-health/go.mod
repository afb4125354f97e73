// gopher-lua, the Lua Argo CD runs health checks in, for the Argo CD health check's test.
module kvbind.io/e2e/tools/argocd-health

go 1.25.0

require github.com/yuin/gopher-lua v1.1.2

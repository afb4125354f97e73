// Command argocd-health runs an Argo CD resource health check the way Argo CD does: the
// Lua script (the value of resource.customizations.health.<group>_<kind>) in gopher-lua,
// with the object as the global `obj`, and prints the table it returns as
// `<status> <message>`. kvbind's tests feed it IdentityBindings in each phase.
//
//	argocd-health SCRIPT < object.json
package main

import (
	"encoding/json"
	"fmt"
	"os"

	lua "github.com/yuin/gopher-lua"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: argocd-health SCRIPT < object.json")
		os.Exit(2)
	}
	status, message, err := run(os.Args[1], os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "argocd-health:", err)
		os.Exit(1)
	}
	fmt.Printf("%s %s\n", status, message)
}

func run(script string, in *os.File) (string, string, error) {
	var object map[string]any
	if err := json.NewDecoder(in).Decode(&object); err != nil {
		return "", "", fmt.Errorf("reading the object: %w", err)
	}
	source, err := os.ReadFile(script)
	if err != nil {
		return "", "", err
	}
	// Argo CD opens only the safe libraries (no os, io) for health scripts.
	state := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer state.Close()
	for _, open := range []struct {
		name string
		fn   lua.LGFunction
	}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}, {lua.StringLibName, lua.OpenString}, {lua.MathLibName, lua.OpenMath}} {
		state.Push(state.NewFunction(open.fn))
		state.Push(lua.LString(open.name))
		state.Call(1, 0)
	}
	state.SetGlobal("obj", toLua(state, object))
	if err := state.DoString(string(source)); err != nil {
		return "", "", fmt.Errorf("running %s: %w", script, err)
	}
	result, ok := state.Get(-1).(*lua.LTable)
	if !ok {
		return "", "", fmt.Errorf("%s returned %s, not a table", script, state.Get(-1).Type())
	}
	return lua.LVAsString(result.RawGetString("status")), lua.LVAsString(result.RawGetString("message")), nil
}

// toLua converts decoded JSON as Argo CD does: objects and arrays become tables (arrays
// 1-based), numbers become numbers.
func toLua(state *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case map[string]any:
		table := state.NewTable()
		for key, item := range v {
			table.RawSetString(key, toLua(state, item))
		}
		return table
	case []any:
		table := state.NewTable()
		for _, item := range v {
			table.Append(toLua(state, item))
		}
		return table
	case string:
		return lua.LString(v)
	case float64:
		return lua.LNumber(v)
	case bool:
		return lua.LBool(v)
	default:
		return lua.LNil
	}
}

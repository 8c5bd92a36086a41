package appliance

import (
	"errors"

	"github.com/mcpgw/mcpgw/jsonrpc"
)

// jsonArgs serves argument constraints from a JSON object given on the
// command line, read by the same code as the data plane reads
// params.arguments.
type jsonArgs struct{ doc []byte }

func newJSONArgs(s string) (*jsonArgs, error) {
	doc := []byte(s)
	if _, kind, found, err := jsonrpc.Lookup(doc, "", nil); err != nil || !found || kind != jsonrpc.ValueObject {
		return nil, errors.New("--arguments must be a JSON object")
	}
	return &jsonArgs{doc: doc}, nil
}

func (a *jsonArgs) Lookup(pointer string) ([]byte, bool) {
	v, kind, found, err := jsonrpc.Lookup(a.doc, pointer, nil)
	if err != nil || !found || !kind.Scalar() {
		return nil, false
	}
	return v, true
}

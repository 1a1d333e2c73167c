package storetest

import "encoding/json"

// dump renders values as JSON, for comparing what went in with what came out.
func dump(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// Package httpquery serves the interactive queries of a running
// [duality.App] over HTTP as JSON, with net/http only, so that a store can
// be read with curl while the app runs:
//
//	h, err := httpquery.Handler(app, httpquery.StringKeys("word-counts", codec.Int64()))
//	go http.ListenAndServe("127.0.0.1:8080", h)
//
//	curl http://127.0.0.1:8080/stores/word-counts/keys/cat
//	{"key":"cat","value":2}
//	curl 'http://127.0.0.1:8080/stores/word-counts?from=a&to=d'
//	{"items":[{"key":"a","value":1},{"key":"cat","value":2}],"more":false}
//
// # Routes
//
// GET /stores/{name}/keys/{key} returns {"key":..., "value":...} (404 when
// the key is absent). GET /stores/{name} returns the pairs of the range
// [from, to) (both optional query parameters) over the partitions this
// instance owns, in encoded key order, at most limit of them (query
// parameter, default 1000, at most 100000) with "more" set when there are
// more; ask again from the last key to page.
//
// # Keys and values
//
// Keys in the URL are strings, decoded from their URL escaping; a [Spec]
// made by [Store] parses them into other key types. Keys and values are
// rendered with encoding/json.
//
// # Errors
//
// Every error is a JSON object {"error": "..."} with a status: 400 for a
// key or parameter that does not parse, 404 for an unknown store or a
// missing key, 405 for a method other than GET or HEAD, 409 (with
// "partition") when the key's partition is owned by another instance of
// the app (requests are not forwarded to it), 503 (with Retry-After) while
// the app is not running, rebalancing or restoring, and 500 otherwise. The
// handler never panics on bad input.
package httpquery

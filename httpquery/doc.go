// Package httpquery serves the interactive queries of a running
// [duality.App] over HTTP as JSON, with net/http only, so that a store can
// be read with curl while the app runs:
//
//	h, err := httpquery.Handler(app,
//		httpquery.StringKeys("word-counts", codec.Int64()),
//		httpquery.Windows(perMinute, func(s string) (string, error) { return s, nil }))
//	go http.ListenAndServe("127.0.0.1:8080", h)
//
//	curl http://127.0.0.1:8080/
//	{"stores":[{"name":"word-counts","kind":"key-value"},{"name":"words-1m","kind":"windows"}]}
//	curl http://127.0.0.1:8080/stores/word-counts/keys/cat
//	{"key":"cat","value":2}
//	curl 'http://127.0.0.1:8080/stores/word-counts?from=a&to=d'
//	{"items":[{"key":"a","value":1},{"key":"cat","value":2}],"more":false}
//	curl 'http://127.0.0.1:8080/stores/words-1m/keys/cat?from=2026-01-01T12:00:00Z'
//	{"items":[{"key":"cat","start":"2026-01-01T12:00:00Z","end":"2026-01-01T12:01:00Z","value":2}],"more":false}
//
// # Routes
//
// GET / lists the stores served, by name, with their kind: "key-value"
// (a [Spec] made by [Store] or [StringKeys]) or "windows" (made by
// [Windows], for the table of a windowed aggregation).
//
// For a key-value store, GET /stores/{name}/keys/{key} returns
// {"key":..., "value":...} (404 when the key is absent), and GET
// /stores/{name} returns the pairs of the range [from, to) (both optional
// query parameters, parsed as keys) over the partitions this instance
// owns, in encoded key order, at most limit of them (query parameter,
// default 1000, at most 100000) with "more" set when there are more; ask
// again from the last key to page.
//
// For a windowed store, GET /stores/{name}/keys/{key} returns the windows
// of the key, and GET /stores/{name} the windows of every key of the
// partitions this instance owns, whose start lies in [from, to): both
// optional, RFC 3339 times or Unix milliseconds, every window when
// absent. Each item is {"key":..., "start":..., "end":..., "value":...}
// with the window's start and end (exclusive) as RFC 3339 times in UTC; a
// key's windows come in start order, all windows in the order of
// duality.ReadOnlyWindowStore.FetchAll. At most limit items are returned,
// with "more" set when there are more; narrow the time range to page.
//
// # Across instances
//
// A store's partitions are spread over the instances of the app (the
// members of its consumer group). When every instance advertises where
// its handler is served, with the option duality.Endpoint, any instance
// answers any key: a key request (GET /stores/{name}/keys/{key}, of a
// key-value or a windowed store) for a key another instance owns is
// forwarded to that instance, whose response is relayed with the header
// [ForwardedHeader] naming it. Forwarding is the default because it asks
// nothing of the client: the instances' endpoints need only be reachable
// from each other (their addresses inside a cluster), not from the
// client, which may come through a load balancer and need not follow
// redirects. With the option [Redirect] the handler answers 307
// Temporary Redirect to the owner instead, saving the hop's bandwidth
// when clients reach every instance.
//
// A request is forwarded once at most: it carries [ForwardedHeader], and
// an instance that receives a forwarded request for a key it does not own
// (the group is rebalancing and the two instances' views differ) answers
// 421 Misdirected Request, which the first instance turns into 503 with
// Retry-After for its client. An owner that cannot be reached is also
// 503 with Retry-After (the group will move its partitions if it has
// failed). These errors carry "store", "partition" and "owner" (the
// owner's endpoint). A key whose owner advertises no endpoint, or whose
// partition is unassigned, is answered 409 with the partition.
//
// Range requests (GET /stores/{name}) read the partitions of the
// instance that receives them, as before: to read a whole store, ask
// every instance.
//
// # Keys and values
//
// Keys in the URL are strings, decoded from their URL escaping; a [Spec]
// made by [Store] or [Windows] parses them into other key types. Keys and
// values are rendered with encoding/json.
//
// # Setup errors
//
// [Handler] makes the queries of its specs when it is created, so that
// a store that does not exist, or is not of the kind its Spec says (a
// windowed store served with [StringKeys]), is an error then, matching
// stream.ErrUnknownStore or duality.ErrWrongStoreKind, not a failure of
// every request.
//
// # Errors
//
// Every error of a request is a JSON object {"error": "..."} with a
// status: 400 for a key, time or parameter that does not parse, 404 for
// an unknown store or a missing key, 405 for a method other than GET or
// HEAD, 409 (with "partition") when the key's partition is owned by
// another instance of the app that advertises no endpoint, 421 and 503
// for a key another instance owns (see "Across instances"), 503 (with
// Retry-After) while the app is not running, rebalancing or restoring,
// and 500 otherwise. The handler never panics on bad input.
package httpquery

// Package debughttp serves a debug page of a running [duality.App] over
// HTTP: its topology drawn as a graph, its counts, rates and consumer
// lag updated live, the tasks running on the instance with their
// partitions, the stores with their sizes, and store lookups through
// package [httpquery]. It has JSON endpoints for scripts and a page that
// needs nothing but the handler (its script and style are embedded: no
// CDN, no build step, as the app's hosts may be offline). It imports
// only the standard library besides the module's packages, and a program
// that does not import it links none of it.
//
//	h, err := debughttp.Handler(app,
//		debughttp.Queries(httpquery.StringKeys("word-counts", codec.Int64())))
//	if err != nil { ... }
//	go debughttp.ListenAndServe(ctx, "127.0.0.1:6060", h)
//	// open http://127.0.0.1:6060/ in a browser
//
// or under a prefix of a server of your own:
//
//	mux.Handle("/debug/", http.StripPrefix("/debug", h))
//
// The page has no authentication and shows what the app's stores hold:
// serve it on a loopback address, or behind what guards the rest of the
// host's debug endpoints.
//
// # Routes
//
// Every route answers GET and HEAD; errors are JSON objects
// {"error": "..."} (404 for an unknown route, 405 for another method).
//
//   - GET / is the page. It loads debug.js and debug.css from beside it
//     and reads the routes below, all relative to itself.
//   - GET /api/topology returns {"app", "refreshMillis", "queries",
//     "graph", "describe", "mermaid"}: the app id, how often the page
//     polls ([Refresh]), whether stores are served ([Queries]), the
//     topology as nodes and edges (duality.App.Graph, a stream.Graph in
//     JSON: {"nodes": [{"id", "kind", "name", "op", "detail",
//     "subTopology"}], "edges": [{"from", "to", "kind"}]}) and as text
//     and Mermaid (duality.App.Describe and Mermaid).
//   - GET /api/metrics returns {"app", "time", "metrics", "tasks"}: the
//     time of the snapshot, duality.App.Metrics, and
//     duality.App.TaskMetrics with each task's "id" ("0_1": sub-topology
//     0, partition 1) added. The snapshots are rendered by
//     encoding/json, so their fields have their Go names
//     ("RecordsProcessed", "Partitions": [{"Topic", "Partition",
//     "Position", "Committed", "End", "Lag"}], ...) as documented on
//     those types; durations and histograms are in nanoseconds.
//     Counters only grow: a rate is the difference of two snapshots
//     over the difference of their times.
//   - GET /api/stores returns {"time", "sizes", "state", "stateError"}:
//     duality.App.StoreSizes (the approximate keys of each store
//     partition running here; it reads the stores, so the page asks for
//     it every fifth poll) and duality.App.StateMetrics (null, with the
//     error in "stateError", without a state directory or while the app
//     is not running).
//   - /query/ serves the routes of package httpquery for the stores
//     given with [Queries] (GET /query/ lists them, GET
//     /query/stores/{name}/keys/{key} reads a key); 404 without.
//
// # The page
//
// The page draws the topology with the layered layout of its own
// script: topics, steps and stores from top to bottom in the direction
// records flow, a colored stripe per sub-topology, topics as
// parallelograms (dashed for the app's internal topics), stores as
// rounded boxes. Every [Refresh] it polls /api/metrics and shows the
// app's counters with their rates per second, the consumer lag summed
// over this instance's partitions, the process latency's median and
// 99th percentile, and per task its records, rate, lag and partitions
// (position, committed offset, end); on the graph each step shows the
// records it takes per second, each source topic the lag of the tasks
// reading it, each store its keys. Below, a form looks keys up with
// [Queries], and the description shows as text.
//
// The figures are those of the instance serving the page: with several
// instances, each serves its own tasks.
package debughttp

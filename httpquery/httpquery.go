package httpquery

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/internal/httpjson"
	"github.com/duality-streams/duality/internal/tablecore"
	"github.com/duality-streams/duality/table"
	"github.com/duality-streams/duality/window"
)

// DefaultLimit is the number of pairs a range request returns when it sets
// no limit; MaxLimit is the largest limit accepted.
const (
	DefaultLimit = 1000
	MaxLimit     = 100_000
)

// ErrBadKey is matched by the errors of a Spec's key parser that the
// handler reports as 400 Bad Request; a parser's other errors are too.
var ErrBadKey = errors.New("httpquery: bad key")

// Spec describes a store served by [Handler]: its name, its kind and how
// to parse its keys and read it. Make one with [Store], [StringKeys] or
// [Windows]. A Spec is an [Option] of Handler.
type Spec struct {
	name string
	kind string // "key-value" or "windows"
	bind func(app *duality.App) (reader, error)
}

func (s Spec) apply(c *config) { c.specs = append(c.specs, s) }

// Option configures a [Handler]: a [Spec], a store to serve, or one of
// the settings [Redirect] and [ForwardClient].
type Option interface{ apply(*config) }

// config is what the options of a Handler set.
type config struct {
	specs    []Spec
	redirect bool
	client   *http.Client
	errs     []error
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// Redirect makes the handler answer a key request for another instance's
// key with 307 Temporary Redirect to that instance (Location: its
// duality.Endpoint followed by the request's path and query), for
// clients that reach every instance and follow redirects, instead of
// forwarding the request there. A redirect carries no mark, so while the
// group rebalances and two instances' views differ, a client may be sent
// back and forth until the views agree or its redirect limit stops it
// (ten for net/http's client). Default: forward, once at most (see
// "Across instances" in the package documentation).
func Redirect() Option { return optionFunc(func(c *config) { c.redirect = true }) }

// ForwardClient sets the client that forwards key requests to the
// instance owning the key, e.g. with TLS settings or another timeout. The
// handler sends each forwarded request with the incoming request's
// context, so a client that goes away cancels it, and with the incoming
// request's method, path, query and Accept header only: give a client
// whose Transport adds credentials when the instances require them of
// each other. Default: a client with
// http.DefaultTransport and a 10 s timeout that follows no redirect. A
// nil client is an error of [Handler].
func ForwardClient(c *http.Client) Option {
	return optionFunc(func(cfg *config) {
		if c == nil {
			cfg.errs = append(cfg.errs, errors.New("httpquery: ForwardClient(nil)"))
			return
		}
		cfg.client = c
	})
}

// reader reads one store with keys given as strings.
type reader struct {
	// key answers GET /stores/{name}/keys/{key}: the JSON body, or
	// found false (404).
	key func(ctx context.Context, key string, q url.Values, limit int) (body any, found bool, err error)
	// scan answers GET /stores/{name}.
	scan func(ctx context.Context, q url.Values, limit int) (page, error)
}

type item struct {
	Key   any `json:"key"`
	Value any `json:"value"`
}

// windowItem is an item of a windowed store.
type windowItem struct {
	Key   any       `json:"key"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Value any       `json:"value"`
}

// page is the body of a range request.
type page struct {
	Items []any `json:"items"`
	More  bool  `json:"more"`
}

// collect reads seq into a page of at most limit items.
func collect[K, V any](seq iter.Seq2[K, V], errf func() error, limit int, mk func(K, V) any) (page, error) {
	p := page{Items: []any{}}
	for k, v := range seq {
		if len(p.Items) == limit {
			p.More = true
			break
		}
		p.Items = append(p.Items, mk(k, v))
	}
	if err := errf(); err != nil {
		return page{}, err
	}
	return p, nil
}

// keyParser wraps parse's errors with ErrBadKey.
func keyParser[K any](parse func(string) (K, error)) func(string) (K, error) {
	return func(s string) (k K, err error) {
		if k, err = parse(s); err != nil {
			err = fmt.Errorf("%w %q: %w", ErrBadKey, s, err)
		}
		return k, err
	}
}

// bindError describes the error of a query made for a Spec of name.
func bindError(name string, err error) error {
	if errors.Is(err, duality.ErrWrongStoreKind) {
		return fmt.Errorf("httpquery: store %q: %w (serve a key-value store with httpquery.Store or StringKeys, a windowed aggregation's table with httpquery.Windows)", name, err)
	}
	return fmt.Errorf("httpquery: %w", err)
}

// Store returns the Spec of the key-value store name with key codec kc,
// value codec vc and parse, which turns a key from the URL (unescaped)
// into a key; an error of parse is answered with 400. A nil parse is an
// error of [Handler], and so is a store that is not a key-value store
// (duality.ErrWrongStoreKind: serve a windowed store with [Windows]).
func Store[K, V any](name string, kc codec.Codec[K], vc codec.Codec[V], parse func(string) (K, error)) Spec {
	return Spec{name: name, kind: "key-value", bind: func(app *duality.App) (reader, error) {
		if parse == nil {
			return reader{}, fmt.Errorf("httpquery: store %q: nil key parser", name)
		}
		q, err := duality.Query(app, name, kc, vc)
		if err != nil {
			return reader{}, bindError(name, err)
		}
		parseKey := keyParser(parse)
		return reader{
			key: func(ctx context.Context, s string, _ url.Values, _ int) (any, bool, error) {
				k, err := parseKey(s)
				if err != nil {
					return nil, false, err
				}
				v, ok, err := q.Get(ctx, k)
				return item{Key: k, Value: v}, ok, err
			},
			scan: func(ctx context.Context, qv url.Values, limit int) (page, error) {
				var bounds [2]*K
				for i, p := range []string{"from", "to"} {
					if !qv.Has(p) {
						continue
					}
					k, err := parseKey(qv.Get(p))
					if err != nil {
						return page{}, err
					}
					bounds[i] = &k
				}
				seq, errf := q.Scan(ctx, bounds[0], bounds[1])
				return collect(seq, errf, limit, func(k K, v V) any { return item{Key: k, Value: v} })
			},
		}, nil
	}}
}

// StringKeys returns the Spec of a key-value store whose keys are strings
// encoded with codec.String(), as table.Count of a string grouping makes.
func StringKeys[V any](name string, vc codec.Codec[V]) Spec {
	return Store(name, codec.String(), vc, func(s string) (string, error) { return s, nil })
}

// Windows returns the Spec of the store of t, the table of a windowed
// aggregation (window.Count, Reduce, Aggregate or AggregateSessions),
// read with duality.QueryWindows; parse turns a key from the URL
// (unescaped) into a record key, as for [Store]. A nil parse is an error
// of [Handler], and so are the errors of duality.QueryWindows.
func Windows[K, V any](t table.Table[window.Windowed[K], V], parse func(string) (K, error)) Spec {
	name, _ := tablecore.Table[window.Windowed[K], V](t).Store()
	return Spec{name: name, kind: "windows", bind: func(app *duality.App) (reader, error) {
		if parse == nil {
			return reader{}, fmt.Errorf("httpquery: store %q: nil key parser", name)
		}
		q, err := duality.QueryWindows(app, t)
		if err != nil {
			return reader{}, bindError(name, err)
		}
		parseKey := keyParser(parse)
		mk := func(w window.Windowed[K], v V) any {
			return windowItem{Key: w.Key, Start: w.Start.UTC(), End: w.End.UTC(), Value: v}
		}
		return reader{
			key: func(ctx context.Context, s string, qv url.Values, limit int) (any, bool, error) {
				k, err := parseKey(s)
				if err != nil {
					return nil, false, err
				}
				from, to, err := timeRange(qv)
				if err != nil {
					return nil, false, err
				}
				seq, errf := q.Fetch(ctx, k, from, to)
				p, err := collect(seq, errf, limit, mk)
				return p, err == nil, err
			},
			scan: func(ctx context.Context, qv url.Values, limit int) (page, error) {
				from, to, err := timeRange(qv)
				if err != nil {
					return page{}, err
				}
				seq, errf := q.FetchAll(ctx, from, to)
				return collect(seq, errf, limit, mk)
			},
		}, nil
	}}
}

// errBadParam is matched by the errors of query parameters that do not
// parse, answered with 400.
var errBadParam = errors.New("bad parameter")

// timeRange returns the time range [from, to) of the parameters from and
// to: RFC 3339 times or Unix milliseconds, every time when absent.
func timeRange(q url.Values) (from, to time.Time, err error) {
	from, to = time.UnixMilli(math.MinInt64), time.UnixMilli(math.MaxInt64)
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"from", &from}, {"to", &to}} {
		if !q.Has(p.name) {
			continue
		}
		s := q.Get(p.name)
		if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
			*p.t = time.UnixMilli(ms)
		} else if *p.t, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return from, to, fmt.Errorf("%w: %s %q: want an RFC 3339 time or Unix milliseconds", errBadParam, p.name, s)
		}
	}
	return from, to, nil
}

// Handler returns an http.Handler serving queries of the stores of app
// described by the [Spec] values among opts, configured by the other
// options (see the package documentation for the routes, the status codes
// and the requests for keys other instances own). It may be created
// before app runs; requests get 503 until app's partitions are ready. It
// returns an error for an unknown store, a store of another kind than its
// Spec says, a duplicate store, an invalid option or a nil app, all at
// once. The handler is safe for concurrent use.
func Handler(app *duality.App, opts ...Option) (http.Handler, error) {
	if app == nil {
		return nil, errors.New("httpquery: nil app")
	}
	var cfg config
	for _, o := range opts {
		if o != nil {
			o.apply(&cfg)
		}
	}
	if cfg.client == nil {
		cfg.client = defaultForwardClient()
	}
	h := &handler{readers: map[string]reader{}, redirect: cfg.redirect, client: cfg.client}
	errs := cfg.errs
	for _, sp := range cfg.specs {
		if sp.bind == nil {
			errs = append(errs, errors.New("httpquery: zero Spec"))
			continue
		}
		if _, dup := h.readers[sp.name]; dup {
			errs = append(errs, fmt.Errorf("httpquery: store %q given twice", sp.name))
			continue
		}
		r, err := sp.bind(app)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		h.readers[sp.name] = r
		h.stores = append(h.stores, storeInfo{Name: sp.name, Kind: sp.kind})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	slices.SortFunc(h.stores, func(a, b storeInfo) int { return strings.Compare(a.Name, b.Name) })
	mux := http.NewServeMux()
	mux.HandleFunc("/stores/{name}/keys/{key...}", h.get)
	mux.HandleFunc("/stores/{name}", h.scan)
	mux.HandleFunc("/{$}", h.list)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, errors.New("no such route"))
	})
	return mux, nil
}

type handler struct {
	readers map[string]reader
	stores  []storeInfo // by name
	// redirect answers a key another instance owns with a redirect
	// (Redirect), instead of forwarding the request with client.
	redirect bool
	client   *http.Client
}

// storeInfo is an entry of the list of stores.
type storeInfo struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
}

// allowed checks the method of r.
func allowed(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed", r.Method))
		return false
	}
	return true
}

// reader checks the method and finds the store of the request and the
// limit of a range.
func (h *handler) reader(w http.ResponseWriter, r *http.Request) (reader, int, bool) {
	if !allowed(w, r) {
		return reader{}, 0, false
	}
	name := r.PathValue("name")
	rd, ok := h.readers[name]
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("unknown store %q", name))
		return reader{}, 0, false
	}
	limit := DefaultLimit
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			writeError(w, http.StatusBadRequest, fmt.Errorf("limit %q: want an integer in [1, %d]", s, MaxLimit))
			return reader{}, 0, false
		}
		limit = n
	}
	return rd, limit, true
}

func (h *handler) list(w http.ResponseWriter, r *http.Request) {
	if allowed(w, r) {
		writeJSON(w, http.StatusOK, struct {
			Stores []storeInfo `json:"stores"`
		}{h.stores})
	}
}

func (h *handler) get(w http.ResponseWriter, r *http.Request) {
	rd, limit, ok := h.reader(w, r)
	if !ok {
		return
	}
	key := r.PathValue("key")
	body, found, err := rd.key(r.Context(), key, r.URL.Query(), limit)
	if err != nil {
		var no *duality.NotOwnedError
		if errors.As(err, &no) {
			h.notOwned(w, r, no)
			return
		}
		writeQueryError(w, err)
		return
	}
	if !found {
		writeError(w, http.StatusNotFound, fmt.Errorf("key %q not found", key))
		return
	}
	writeJSON(w, http.StatusOK, body)
}

func (h *handler) scan(w http.ResponseWriter, r *http.Request) {
	rd, limit, ok := h.reader(w, r)
	if !ok {
		return
	}
	p, err := rd.scan(r.Context(), r.URL.Query(), limit)
	if err != nil {
		writeQueryError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// writeQueryError maps a query error to its status.
func writeQueryError(w http.ResponseWriter, err error) {
	var no *duality.NotOwnedError
	switch {
	case errors.Is(err, ErrBadKey), errors.Is(err, errBadParam):
		writeError(w, http.StatusBadRequest, err)
	case errors.As(err, &no):
		writeJSON(w, http.StatusConflict, map[string]any{"error": err.Error(), "store": no.Store, "partition": no.Partition})
	case errors.Is(err, duality.ErrStoreNotReady):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusServiceUnavailable, err)
	default:
		writeError(w, http.StatusInternalServerError, err)
	}
}

func writeError(w http.ResponseWriter, status int, err error) { httpjson.Error(w, status, err) }

func writeJSON(w http.ResponseWriter, status int, v any) { httpjson.Write(w, status, v) }

package httpquery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/codec"
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

// Spec describes a store served by [Handler]: its name and how to parse
// its keys and read it. Make one with [Store] or [StringKeys].
type Spec struct {
	name string
	bind func(app *duality.App) (reader, error)
}

// reader reads one store with keys given as strings.
type reader struct {
	get  func(ctx context.Context, key string) (item, bool, error)
	scan func(ctx context.Context, from, to *string, limit int) ([]item, bool, error)
}

type item struct {
	Key   any `json:"key"`
	Value any `json:"value"`
}

// Store returns the Spec of the store name with key codec kc, value codec
// vc and parse, which turns a key from the URL (unescaped) into a key; an
// error of parse is answered with 400. A nil parse is an error of
// [Handler].
func Store[K, V any](name string, kc codec.Codec[K], vc codec.Codec[V], parse func(string) (K, error)) Spec {
	return Spec{name: name, bind: func(app *duality.App) (reader, error) {
		if parse == nil {
			return reader{}, fmt.Errorf("httpquery: store %q: nil key parser", name)
		}
		q, err := duality.Query(app, name, kc, vc)
		if err != nil {
			return reader{}, fmt.Errorf("httpquery: %w", err)
		}
		parseKey := func(s string) (k K, err error) {
			if k, err = parse(s); err != nil {
				err = fmt.Errorf("%w %q: %w", ErrBadKey, s, err)
			}
			return k, err
		}
		return reader{
			get: func(ctx context.Context, s string) (item, bool, error) {
				k, err := parseKey(s)
				if err != nil {
					return item{}, false, err
				}
				v, ok, err := q.Get(ctx, k)
				return item{Key: k, Value: v}, ok, err
			},
			scan: func(ctx context.Context, from, to *string, limit int) ([]item, bool, error) {
				var fk, tk *K
				if from != nil {
					k, err := parseKey(*from)
					if err != nil {
						return nil, false, err
					}
					fk = &k
				}
				if to != nil {
					k, err := parseKey(*to)
					if err != nil {
						return nil, false, err
					}
					tk = &k
				}
				seq, errf := q.Scan(ctx, fk, tk)
				items := []item{}
				more := false
				for k, v := range seq {
					if len(items) == limit {
						more = true
						break
					}
					items = append(items, item{Key: k, Value: v})
				}
				if err := errf(); err != nil {
					return nil, false, err
				}
				return items, more, nil
			},
		}, nil
	}}
}

// StringKeys returns the Spec of a store whose keys are strings encoded
// with codec.String(), as table.Count of a string grouping makes.
func StringKeys[V any](name string, vc codec.Codec[V]) Spec {
	return Store(name, codec.String(), vc, func(s string) (string, error) { return s, nil })
}

// Handler returns an http.Handler serving queries of the stores of app
// described by specs (see the package documentation for the routes and
// status codes). It may be created before app runs; requests get 503 until
// app's partitions are ready. It returns an error for an unknown store, a
// duplicate store or a nil app, all at once. The handler is safe for
// concurrent use.
func Handler(app *duality.App, specs ...Spec) (http.Handler, error) {
	if app == nil {
		return nil, errors.New("httpquery: nil app")
	}
	readers := map[string]reader{}
	var errs []error
	for _, sp := range specs {
		if sp.bind == nil {
			errs = append(errs, errors.New("httpquery: zero Spec"))
			continue
		}
		if _, dup := readers[sp.name]; dup {
			errs = append(errs, fmt.Errorf("httpquery: store %q given twice", sp.name))
			continue
		}
		r, err := sp.bind(app)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		readers[sp.name] = r
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	h := &handler{readers: readers}
	mux := http.NewServeMux()
	mux.HandleFunc("/stores/{name}/keys/{key...}", h.get)
	mux.HandleFunc("/stores/{name}", h.scan)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, errors.New("no such route"))
	})
	return mux, nil
}

type handler struct {
	readers map[string]reader
}

// reader checks the method and finds the store of the request.
func (h *handler) reader(w http.ResponseWriter, r *http.Request) (reader, bool) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed", r.Method))
		return reader{}, false
	}
	name := r.PathValue("name")
	rd, ok := h.readers[name]
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("unknown store %q", name))
	}
	return rd, ok
}

func (h *handler) get(w http.ResponseWriter, r *http.Request) {
	rd, ok := h.reader(w, r)
	if !ok {
		return
	}
	key := r.PathValue("key")
	it, found, err := rd.get(r.Context(), key)
	if err != nil {
		writeQueryError(w, err)
		return
	}
	if !found {
		writeError(w, http.StatusNotFound, fmt.Errorf("key %q not found", key))
		return
	}
	writeJSON(w, http.StatusOK, it)
}

func (h *handler) scan(w http.ResponseWriter, r *http.Request) {
	rd, ok := h.reader(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	limit := DefaultLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			writeError(w, http.StatusBadRequest, fmt.Errorf("limit %q: want an integer in [1, %d]", s, MaxLimit))
			return
		}
		limit = n
	}
	var from, to *string
	if q.Has("from") {
		s := q.Get("from")
		from = &s
	}
	if q.Has("to") {
		s := q.Get("to")
		to = &s
	}
	items, more, err := rd.scan(r.Context(), from, to, limit)
	if err != nil {
		writeQueryError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Items []item `json:"items"`
		More  bool   `json:"more"`
	}{items, more})
}

// writeQueryError maps a query error to its status.
func writeQueryError(w http.ResponseWriter, err error) {
	var no *duality.NotOwnedError
	switch {
	case errors.Is(err, ErrBadKey):
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

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

// writeJSON encodes v before writing the status, so that a value
// encoding/json cannot render becomes a 500.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(map[string]string{"error": "encode response: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

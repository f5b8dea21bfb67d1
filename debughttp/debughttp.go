package debughttp

import (
	"embed"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/httpquery"
	"github.com/duality-streams/duality/internal/httpjson"
	"github.com/duality-streams/duality/store"
	"github.com/duality-streams/duality/stream"
)

// DefaultRefresh is how often the page polls the app's metrics unless
// [Refresh] says otherwise.
const DefaultRefresh = time.Second

// MinRefresh is the shortest interval [Refresh] accepts.
const MinRefresh = 100 * time.Millisecond

// assets are the page and what it loads: nothing comes from elsewhere,
// so that it works where the app's hosts have no Internet access.
//
//go:embed assets
var assets embed.FS

// Option configures a [Handler]: [Queries] or [Refresh].
type Option interface{ apply(*config) }

type config struct {
	queries []httpquery.Option
	refresh time.Duration
	errs    []error
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// Queries serves the stores that opts describe (httpquery.Store,
// StringKeys and Windows specs, and httpquery's other options) under
// /query/, with an httpquery handler of the app: the routes of package
// httpquery behind that prefix, which the page uses to look keys up.
// The errors of httpquery.Handler are errors of [Handler]. To forward a
// key request to the instance that owns the key, an instance advertises
// with duality.Endpoint the URL of its /query/ route, e.g.
// "http://10.0.0.7:6060/debug/query" for a handler mounted at /debug/.
// Default: no store is served, and /query/ answers 404.
func Queries(opts ...httpquery.Option) Option {
	return optionFunc(func(c *config) { c.queries = append(c.queries, opts...) })
}

// Refresh sets how often the page polls the app's metrics, and so the
// interval its rates are computed over; it reads the store sizes (which
// reads the stores) every fifth poll. Default [DefaultRefresh]; an
// interval shorter than [MinRefresh] is an error of [Handler].
func Refresh(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d < MinRefresh {
			c.errs = append(c.errs, fmt.Errorf("debughttp: Refresh(%v): want at least %v", d, MinRefresh))
			return
		}
		c.refresh = d
	})
}

// Handler returns an http.Handler serving the debug page of app and the
// JSON it shows (see the package documentation for the routes). Mount it
// at the root of a server or under a prefix with http.StripPrefix: the
// page refers to everything relative to itself, and a request for the
// prefix without its final slash ("/debug" for
// http.StripPrefix("/debug", h)) is redirected to it with the slash
// (301, a relative Location). It may be created before
// app runs. It returns an error for a nil app, an invalid option and the
// errors of httpquery.Handler for the [Queries] options, all at once. The
// handler is safe for concurrent use.
func Handler(app *duality.App, opts ...Option) (http.Handler, error) {
	if app == nil {
		return nil, errors.New("debughttp: nil app")
	}
	cfg := config{refresh: DefaultRefresh}
	for _, o := range opts {
		if o != nil {
			o.apply(&cfg)
		}
	}
	errs := cfg.errs
	h := &handler{app: app, refresh: cfg.refresh}
	if cfg.queries != nil {
		q, err := httpquery.Handler(app, cfg.queries...)
		if err != nil {
			errs = append(errs, err)
		} else {
			h.query = http.StripPrefix("/query", q)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return h, nil
}

type handler struct {
	app     *duality.App
	refresh time.Duration
	query   http.Handler // nil without Queries
}

// topologyBody is the body of /api/topology.
type topologyBody struct {
	App           string       `json:"app"`
	RefreshMillis int64        `json:"refreshMillis"`
	Queries       bool         `json:"queries"`
	Graph         stream.Graph `json:"graph"`
	Describe      string       `json:"describe"`
	Mermaid       string       `json:"mermaid"`
}

// metricsBody is the body of /api/metrics.
type metricsBody struct {
	App     string          `json:"app"`
	Time    time.Time       `json:"time"`
	Metrics duality.Metrics `json:"metrics"`
	Tasks   []task          `json:"tasks"`
}

// task is a task's metrics with its id as Kafka Streams writes it.
type task struct {
	ID string `json:"id"`
	duality.TaskMetrics
}

// storesBody is the body of /api/stores.
type storesBody struct {
	Time       time.Time           `json:"time"`
	Sizes      []duality.StoreSize `json:"sizes"`
	State      *store.Metrics      `json:"state"`
	StateError string              `json:"stateError,omitempty"`
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if p == "/query" || strings.HasPrefix(p, "/query/") {
		if h.query == nil {
			writeError(w, http.StatusNotFound, errors.New("no store is served: create the handler with debughttp.Queries"))
			return
		}
		h.query.ServeHTTP(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed: GET or HEAD", r.Method))
		return
	}
	switch p {
	case "":
		// Mounted with http.StripPrefix("/debug", h) and asked for
		// "/debug": the page's relative links need the slash. The
		// Location is relative ("debug/"), so that it also holds
		// behind a proxy that strips a prefix of its own.
		w.Header().Set("Location", path.Base(requestPath(r))+"/")
		writeError(w, http.StatusMovedPermanently, errors.New("the page is at the path with a slash"))
	case "/":
		h.asset(w, r, "debug.html")
	case "/debug.js", "/debug.css":
		h.asset(w, r, p[1:])
	case "/api/topology":
		writeJSON(w, http.StatusOK, topologyBody{
			App:           h.app.ID(),
			RefreshMillis: h.refresh.Milliseconds(),
			Queries:       h.query != nil,
			Graph:         h.app.Graph(),
			Describe:      h.app.Describe(),
			Mermaid:       h.app.Mermaid(),
		})
	case "/api/metrics":
		tms := h.app.TaskMetrics()
		tasks := make([]task, len(tms))
		for i, tm := range tms {
			tasks[i] = task{ID: tm.Task.String(), TaskMetrics: tm}
		}
		writeJSON(w, http.StatusOK, metricsBody{App: h.app.ID(), Time: time.Now().UTC(), Metrics: h.app.Metrics(), Tasks: tasks})
	case "/api/stores":
		body := storesBody{Time: time.Now().UTC(), Sizes: h.app.StoreSizes()}
		if body.Sizes == nil {
			body.Sizes = []duality.StoreSize{}
		}
		if m, err := h.app.StateMetrics(); err != nil {
			body.StateError = err.Error()
		} else {
			body.State = &m
		}
		writeJSON(w, http.StatusOK, body)
	default:
		writeError(w, http.StatusNotFound, fmt.Errorf("no route %q: see the package documentation of debughttp", p))
	}
}

// requestPath is the path the client asked for, before any
// http.StripPrefix.
func requestPath(r *http.Request) string {
	p, _, _ := strings.Cut(r.RequestURI, "?")
	if p == "" || p[0] != '/' {
		return r.URL.Path
	}
	return p
}

// contentSecurity keeps the page to what the handler serves.
const contentSecurity = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func (h *handler) asset(w http.ResponseWriter, r *http.Request, name string) {
	w.Header().Set("Content-Security-Policy", contentSecurity)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeFileFS(w, r, assets, "assets/"+name)
}

func writeError(w http.ResponseWriter, status int, err error) { httpjson.Error(w, status, err) }

func writeJSON(w http.ResponseWriter, status int, v any) { httpjson.Write(w, status, v) }

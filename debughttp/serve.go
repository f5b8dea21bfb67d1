package debughttp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// ShutdownTimeout is how long [Serve] waits for the requests in flight
// once its context is canceled before it closes their connections.
const ShutdownTimeout = 5 * time.Second

// ListenAndServe listens on the TCP address addr and serves h there
// with [Serve] until ctx is canceled. The page has no authentication:
// bind a loopback address ("127.0.0.1:6060") unless the network it is
// reachable from may read the app's topology, metrics and stores. It
// returns the error of listening at once, and otherwise what Serve
// returns.
func ListenAndServe(ctx context.Context, addr string, h http.Handler) error {
	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("debughttp: %w", err)
	}
	return Serve(ctx, ln, h)
}

// Serve serves h on ln until ctx is canceled, then shuts the server
// down: it stops accepting, cancels the contexts of the requests in
// flight, waits up to [ShutdownTimeout] for them to finish and closes
// the connections left (a handler that ignores its context and runs on
// is not waited for). It closes ln and returns nil when ctx was
// canceled, the error of serving otherwise. The server reads a
// request's header for at most 10 s.
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	if ln == nil || h == nil {
		return errors.New("debughttp: Serve needs a listener and a handler")
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("debughttp: serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	<-errc // http.ErrServerClosed
	return nil
}

package httpquery

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/duality-streams/duality"
)

// This file holds what the handler does with a key request for a key
// another instance owns: forward it there (one hop at most), redirect
// there, or say who owns it.

// ForwardedHeader marks a request one instance forwarded to the instance
// owning the key, and the response relayed back from it; its value is
// the owner's endpoint. An instance never forwards a request that has it:
// when it does not own the key either (the instances' views of the group
// differ while it rebalances) it answers 421 Misdirected Request, and the
// instance that forwarded the request answers its client 503 with
// Retry-After.
const ForwardedHeader = "Duality-Forwarded"

// forwardTimeout bounds a forwarded request of the default client.
const forwardTimeout = 10 * time.Second

// defaultForwardClient is the client of ForwardClient's default: it
// follows no redirect, so that the owner's response is relayed as it is.
func defaultForwardClient() *http.Client {
	return &http.Client{
		Timeout: forwardTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// notOwned answers a key request whose key another instance owns.
func (h *handler) notOwned(w http.ResponseWriter, r *http.Request, no *duality.NotOwnedError) {
	switch {
	case r.Header.Get(ForwardedHeader) != "":
		// Never a second hop: a stale view, here or at the instance
		// that forwarded the request, could make it loop.
		writeOwner(w, http.StatusMisdirectedRequest, fmt.Errorf("forwarded request: %w", no), no)
	case no.Owner == "":
		writeQueryError(w, no)
	default:
		target, err := ownerURL(no.Owner, r)
		if err != nil {
			w.Header().Set("Retry-After", "1")
			writeOwner(w, http.StatusServiceUnavailable, err, no)
			return
		}
		if h.redirect {
			w.Header().Set("Location", target)
			writeOwner(w, http.StatusTemporaryRedirect, no, no)
			return
		}
		h.forward(w, r, target, no)
	}
}

// forward sends r to target, the same request at the owner's endpoint,
// and relays the owner's response: its status, body and the headers
// Content-Type and Retry-After. An owner that does not own the key either
// (421), or that does not answer, is answered with 503 and Retry-After:
// the group is rebalancing, or the owner has failed and the group will
// move its partitions.
func (h *handler) forward(w http.ResponseWriter, r *http.Request, target string, no *duality.NotOwnedError) {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, target, nil)
	if err != nil {
		w.Header().Set("Retry-After", "1")
		writeOwner(w, http.StatusServiceUnavailable, fmt.Errorf("forward to the owner: %w", err), no)
		return
	}
	req.Header.Set(ForwardedHeader, no.Owner)
	if a := r.Header.Get("Accept"); a != "" {
		req.Header.Set("Accept", a)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		w.Header().Set("Retry-After", "1")
		writeOwner(w, http.StatusServiceUnavailable, fmt.Errorf("%w: owner unreachable: %w", no, err), no)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusMisdirectedRequest {
		w.Header().Set("Retry-After", "1")
		writeOwner(w, http.StatusServiceUnavailable,
			fmt.Errorf("%w, which does not own it either: the group is rebalancing", no), no)
		return
	}
	for _, k := range []string{"Content-Type", "Retry-After", "X-Content-Type-Options"} {
		if v := resp.Header.Get(k); v != "" {
			w.Header().Set(k, v)
		}
	}
	w.Header().Set(ForwardedHeader, no.Owner)
	w.WriteHeader(resp.StatusCode)
	// The status is sent: a failure to relay the body can only cut the
	// response short, which the client sees.
	_, _ = io.Copy(w, resp.Body)
}

// ownerURL returns the URL of r at the owner's endpoint: the endpoint,
// then r's path (as this handler sees it, so under the endpoint's path
// when the handler is mounted under a prefix) and query.
func ownerURL(owner string, r *http.Request) (string, error) {
	target := strings.TrimSuffix(owner, "/") + r.URL.EscapedPath()
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("owner endpoint %q: not an http or https URL", owner)
	}
	return target, nil
}

// writeOwner writes err with the status, the store, the partition and
// the owner's endpoint.
func writeOwner(w http.ResponseWriter, status int, err error, no *duality.NotOwnedError) {
	writeJSON(w, status, map[string]any{"error": err.Error(), "store": no.Store, "partition": no.Partition, "owner": no.Owner})
}

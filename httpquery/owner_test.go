package httpquery_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/httpquery"
)

// member is one of two instances of the word count that pair runs.
type member struct {
	url      string // its server's URL, with the handler's mount prefix
	endpoint string // what it advertises
	counts   *duality.ReadOnlyStore[string, int64]
}

// pair runs two instances of the word count in one group on an embedded
// broker, each with a handler made with opts, mounted under /iq on a
// server on 127.0.0.1, and advertising advertise(i, url) (url is its own
// handler's URL). It waits until the instances agree on the owner of
// every word, each owning some, and each word's owner serves its count,
// and returns the instances and the counts.
func pair(t *testing.T, advertise func(i int, url string) string, opts ...httpquery.Option) ([2]member, map[string]int64) {
	t.Helper()
	b, want := setup(t, 200)
	topo := wordCount(t)
	var ms [2]member
	for i := range ms {
		srv := httptest.NewUnstartedServer(nil)
		u := "http://" + srv.Listener.Addr().String() + "/iq"
		ms[i] = member{url: u, endpoint: advertise(i, u)}
		app, err := duality.New("hq-owner", topo, b, duality.Endpoint(ms[i].endpoint),
			duality.Workers(1), duality.CommitInterval(5*time.Millisecond))
		require.NoError(t, err)
		ms[i].counts, err = duality.Query(app, "counts", codec.String(), codec.Int64())
		require.NoError(t, err)
		h, err := httpquery.Handler(app, append(opts, httpquery.StringKeys("counts", codec.Int64()))...)
		require.NoError(t, err)
		mux := http.NewServeMux()
		mux.Handle("/iq/", http.StripPrefix("/iq", h))
		srv.Config.Handler = mux
		srv.Start()
		t.Cleanup(srv.Close)
		run(t, app)
	}
	eventually(t, "both instances own some words, agree on their owners and serve their counts", func() bool {
		var owns [2]int
		for w, n := range want {
			var local []int
			for i, m := range ms {
				o, err := m.counts.Owner(w)
				if err != nil {
					return false
				}
				if o.Local {
					local = append(local, i)
				}
			}
			if len(local) != 1 {
				return false
			}
			owner := ms[local[0]]
			other, err := ms[1-local[0]].counts.Owner(w)
			if err != nil || other.Endpoint != owner.endpoint {
				return false
			}
			got, _, err := owner.counts.Get(t.Context(), w)
			if err != nil || got != n {
				return false
			}
			owns[local[0]]++
		}
		return owns[0] > 0 && owns[1] > 0
	})
	return ms, want
}

// ownerOf returns the index of the instance of ms that owns w.
func ownerOf(t *testing.T, ms [2]member, w string) int {
	t.Helper()
	o, err := ms[0].counts.Owner(w)
	require.NoError(t, err)
	if o.Local {
		return 0
	}
	return 1
}

// do sends a request with the headers (pairs of name and value), follows
// no redirect, and returns the response with its body read.
func do(t *testing.T, method, rawURL string, headers ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, rawURL, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, strings.TrimSpace(string(body))
}

// TestForward: every key is answered by both instances, the one that does
// not own it forwarding the request to the owner (under the handler's
// mount prefix, which the endpoint includes) and relaying its answer, a
// 404 too; HEAD is forwarded as well.
func TestForward(t *testing.T) {
	ms, want := pair(t, func(_ int, u string) string { return u })
	for w, n := range want {
		owner := ownerOf(t, ms, w)
		for i, m := range ms {
			resp, body := do(t, http.MethodGet, m.url+"/stores/counts/keys/"+w)
			require.Equal(t, http.StatusOK, resp.StatusCode, body)
			require.Equal(t, fmt.Sprintf(`{"key":%q,"value":%d}`, w, n), body)
			require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			if i == owner {
				require.Empty(t, resp.Header.Get(httpquery.ForwardedHeader))
			} else {
				require.Equal(t, ms[owner].endpoint, resp.Header.Get(httpquery.ForwardedHeader))
			}
			resp, body = do(t, http.MethodHead, m.url+"/stores/counts/keys/"+w)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Empty(t, body)
		}
	}
	// A missing key: its owner's 404, from both.
	for _, m := range ms {
		resp, body := do(t, http.MethodGet, m.url+"/stores/counts/keys/absent")
		require.Equal(t, http.StatusNotFound, resp.StatusCode, body)
		require.Equal(t, `{"error":"key \"absent\" not found"}`, body)
	}
}

// TestRedirect: with Redirect, the instance that does not own a key
// answers 307 to the owner, and a client following it gets the count.
func TestRedirect(t *testing.T) {
	ms, want := pair(t, func(_ int, u string) string { return u }, httpquery.Redirect())
	for w, n := range want {
		owner := ownerOf(t, ms, w)
		other := ms[1-owner]
		resp, body := do(t, http.MethodGet, other.url+"/stores/counts/keys/"+w+"?limit=5")
		require.Equal(t, http.StatusTemporaryRedirect, resp.StatusCode, body)
		require.Equal(t, ms[owner].endpoint+"/stores/counts/keys/"+w+"?limit=5", resp.Header.Get("Location"))
		require.Contains(t, body, fmt.Sprintf(`"owner":%q`, ms[owner].endpoint))

		code, got := get(t, other.url+"/stores/counts/keys/"+w) // follows the redirect
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, float64(n), got["value"])
	}
}

// TestForwardOnce: a forwarded request is never forwarded again. An
// instance that gets one for a key it does not own answers 421, naming
// the owner.
func TestForwardOnce(t *testing.T) {
	ms, want := pair(t, func(_ int, u string) string { return u })
	for w := range want {
		owner := ownerOf(t, ms, w)
		resp, body := do(t, http.MethodGet, ms[1-owner].url+"/stores/counts/keys/"+w, httpquery.ForwardedHeader, "http://elsewhere")
		require.Equal(t, http.StatusMisdirectedRequest, resp.StatusCode, body)
		require.Contains(t, body, fmt.Sprintf(`"owner":%q`, ms[owner].endpoint))
		require.Contains(t, body, `"store":"counts"`)
	}
}

// TestForwardStaleOwner: an instance whose forward gets 421 from the
// owner answers its client 503 with Retry-After, naming the owner. Here
// instance 1 advertises instance 0's endpoint (as two instances would
// disagree during a rebalance): instance 0 forwards a key of instance 1
// to itself, which does not forward it again.
func TestForwardStaleOwner(t *testing.T) {
	var first string
	ms, want := pair(t, func(i int, u string) string {
		if i == 0 {
			first = u
		}
		return first
	})
	for w, n := range want {
		owner := ownerOf(t, ms, w)
		resp, body := do(t, http.MethodGet, ms[0].url+"/stores/counts/keys/"+w)
		if owner == 0 {
			require.Equal(t, http.StatusOK, resp.StatusCode, body)
			require.Equal(t, fmt.Sprintf(`{"key":%q,"value":%d}`, w, n), body)
			continue
		}
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, body)
		require.Equal(t, "1", resp.Header.Get("Retry-After"))
		require.Contains(t, body, "does not own it either")
		require.Contains(t, body, fmt.Sprintf(`"owner":%q`, ms[0].url))
	}
}

// TestForwardUnreachable: an owner that does not answer is reported as
// 503 with Retry-After, naming it; the owner itself still answers.
func TestForwardUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	gone := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())
	ms, want := pair(t, func(i int, u string) string {
		if i == 1 {
			return gone
		}
		return u
	})
	for w, n := range want {
		if ownerOf(t, ms, w) == 0 {
			continue
		}
		resp, body := do(t, http.MethodGet, ms[0].url+"/stores/counts/keys/"+w)
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, body)
		require.Equal(t, "1", resp.Header.Get("Retry-After"))
		require.Contains(t, body, "owner unreachable")
		require.Contains(t, body, fmt.Sprintf(`"owner":%q`, gone))
		resp, body = do(t, http.MethodGet, ms[1].url+"/stores/counts/keys/"+w)
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Equal(t, fmt.Sprintf(`{"key":%q,"value":%d}`, w, n), body)
	}
}

func TestForwardClientNil(t *testing.T) {
	b, _ := setup(t, 0)
	app, err := duality.New("hq-nil", wordCount(t), b)
	require.NoError(t, err)
	_, err = httpquery.Handler(app, httpquery.StringKeys("counts", codec.Int64()), httpquery.ForwardClient(nil))
	require.ErrorContains(t, err, "ForwardClient(nil)")
}

package debughttp_test

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/debughttp"
	"github.com/duality-streams/duality/httpquery"
)

// chromium returns the path of a Chromium to run headless: $DUALITY_CHROMIUM,
// or chromium on $PATH (Debian's package chromium, which .ci/run
// installs). Without one the test is skipped, unless
// DUALITY_REQUIRE_CHROMIUM=1 (set by .ci/run) makes it fail, so that a
// machine missing it cannot pass silently.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("DUALITY_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("DUALITY_REQUIRE_CHROMIUM") == "1" {
		t.Fatal("chromium not found and DUALITY_REQUIRE_CHROMIUM=1: apt-get install chromium, or set DUALITY_CHROMIUM to a Chromium binary")
	}
	t.Skip("chromium not found: apt-get install chromium (or set DUALITY_CHROMIUM) to run the page in a headless browser; .ci/run installs it")
	return ""
}

// TestPageInChromium loads the debug page of a running word count in
// headless Chromium while lines keep arriving, and checks what a person
// would see: every node of the topology drawn in the SVG with every edge,
// the counters and the records in per second of the steps moving from one
// poll to the next, the tasks listed with their lag, and a store lookup.
// It keeps a screenshot of the page, debug-page.png, in t.ArtifactDir(),
// whose path it logs: with -artifacts (go test -v -run TestPageInChromium
// -artifacts -outputdir DIR ./debughttp) a directory under
// DIR/_artifacts, otherwise a temporary directory removed after the test.
func TestPageInChromium(t *testing.T) {
	exe := chromium(t)
	b := setup(t, 100)
	app, err := duality.New("dbg", wordCount(t), b, duality.StateDir(t.TempDir()), duality.CommitInterval(20*time.Millisecond))
	require.NoError(t, err)
	h, err := debughttp.Handler(app, debughttp.Queries(httpquery.StringKeys("counts", codec.Int64())),
		debughttp.Refresh(200*time.Millisecond))
	require.NoError(t, err)
	srv := httptest.NewServer(h) // 127.0.0.1
	defer srv.Close()
	run(t, app)

	// Lines keep arriving, 10 every 10 ms, until the test ends (at most
	// 100k, a bound for a test that would hang).
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	wg.Go(func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 100; i < 100_000 && ctx.Err() == nil; i += 10 {
			produceLines(ctx, t, b, i, i+10)
			select {
			case <-ctx.Done():
			case <-tick.C:
			}
		}
	})

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.WindowSize(1280, 1024),
		// chromedp's defaults (headless, no first run, no background
		// networking, no sync, a fresh user data directory it removes)
		// and what Chromium needs as root on a closed network: no
		// sandbox, no GPU, no QUIC, no component updates.
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
	)
	actx, cancel := chromedp.NewExecAllocator(t.Context(), opts...)
	defer cancel()
	bctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	defer cancel()
	bctx, cancel = context.WithTimeout(bctx, 2*time.Minute)
	defer cancel()

	// The topology is drawn: a node for each of the graph's nodes, named
	// as the graph names them, and a path for each edge.
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#topology g.node`)),
	))
	names, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#topology g.node")].map(g => g.dataset.name)`))
	require.NoError(t, err)
	graph := app.Graph()
	var want []string
	for _, n := range graph.Nodes {
		want = append(want, n.Name)
	}
	require.ElementsMatch(t, want, names)
	edges, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll("#topology path.edge").length`))
	require.NoError(t, err)
	require.Equal(t, len(graph.Edges), edges)
	sized, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`[...document.querySelectorAll("#topology g.node")].every(g => {
		const r = g.getBoundingClientRect(); return r.width > 40 && r.height > 20 })`))
	require.NoError(t, err)
	require.True(t, sized, "every node has a size")

	// The numbers move: the processed count read twice, a poll apart,
	// grows; the rates and the steps' records per second show.
	first := readCount(bctx, t, `document.body.dataset.polls >= 2 && document.getElementById("processed").textContent !== "0"`)
	second := readCount(bctx, t, `document.getElementById("processed").textContent !== "`+formatCount(first)+`"`)
	require.Greater(t, second, first)
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Poll[chromedp.Void](`/[1-9].*\/s$/.test(document.getElementById("processed-rate").textContent)`, poll...),
		chromedp.Poll[chromedp.Void](`/^in .*[1-9].*\/s$/.test(document.querySelector('#topology g.node[data-name="split-words"] text.live').textContent)`, poll...),
	))
	rate := text(bctx, t, "#processed-rate")
	stepRate := text(bctx, t, `#topology g.node[data-name="split-words"] text.live`)
	lag := text(bctx, t, "#lag")
	t.Logf("processed %d then %d, %s; split-words %s; lag %s", first, second, rate, stepRate, lag)
	_, err = strconv.ParseInt(strings.ReplaceAll(lag, ",", ""), 10, 64)
	require.NoError(t, err, "lag %q", lag)
	tasks, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll("#tasks tbody tr").length`))
	require.NoError(t, err)
	require.Equal(t, 4, tasks)

	// A store lookup through the form.
	require.NoError(t, chromedp.Do(bctx,
		chromedp.WaitReady(chromedp.CSS(`#query-store option`)),
		chromedp.SetValue(chromedp.CSS(`#query-key`), "w3"),
		chromedp.Click(chromedp.CSS(`#query button`)),
		chromedp.Poll[chromedp.Void](`document.getElementById("query-result").textContent.startsWith("200")`, poll...),
	))
	require.Contains(t, text(bctx, t, "#query-result"), `"key": "w3"`)

	png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	shot := filepath.Join(t.ArtifactDir(), "debug-page.png")
	require.NoError(t, os.WriteFile(shot, png, 0o644))
	t.Logf("screenshot: %s", shot)
}

// poll evaluates a condition on the page every 20 ms for at most 30 s
// (a bound, not a delay).
var poll = []chromedp.PollOption{chromedp.WithPollingInterval(20 * time.Millisecond), chromedp.WithPollingTimeout(30 * time.Second)}

// text returns the text of the element the CSS selector sel matches.
func text(ctx context.Context, t *testing.T, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(sel)))
	require.NoError(t, err, sel)
	return s
}

// readCount waits until cond holds on the page and reads the processed
// count it shows.
func readCount(ctx context.Context, t *testing.T, cond string) int64 {
	t.Helper()
	require.NoError(t, chromedp.Do(ctx, chromedp.Poll[chromedp.Void](cond, poll...)))
	s := text(ctx, t, "#processed")
	n, err := strconv.ParseInt(strings.ReplaceAll(s, ",", ""), 10, 64)
	require.NoError(t, err, "processed %q", s)
	return n
}

// formatCount formats n as the page does (en-US grouping).
func formatCount(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

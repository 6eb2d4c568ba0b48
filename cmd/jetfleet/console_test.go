package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/examples"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/supervisor"
	"github.com/jetfleet/jetfleet/workers/transform"
)

// chromium finds the browser the console test drives: $JETFLEET_CHROMIUM,
// else Debian's chromium (scripts/tools.sh installs it). Without one the
// test skips, except under CI=true, where it fails.
func chromium(t *testing.T) string {
	t.Helper()
	candidates := []string{os.Getenv("JETFLEET_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	msg := "no chromium found (scripts/tools.sh installs Debian's chromium; JETFLEET_CHROMIUM names another)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// browser starts a headless chromium and returns a tab's context.
func browser(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox, // tests may run as root, which chromium's sandbox refuses
		chromedp.Flag("disable-gpu", true),
		chromedp.WindowSize(1360, 940),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	tctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	require.NoError(t, chromedp.Do(tctx), "start chromium")
	return tctx
}

// screenshot saves the tab as docs/console/<name>.png when
// UPDATE_SCREENSHOTS=1, and under the test's temp dir otherwise, so that
// a test run does not change the tree.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	require.NoError(t, err, "screenshot %s", name)
	require.True(t, bytes.HasPrefix(png, []byte("\x89PNG")), "screenshot %s is a PNG", name)
	dir := t.TempDir()
	if os.Getenv("UPDATE_SCREENSHOTS") == "1" {
		dir = filepath.Join("..", "..", "docs", "console")
		require.NoError(t, os.MkdirAll(dir, 0o755))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644))
}

// consoleQuery asks the console's query API, as the page does.
func consoleQuery(t *testing.T, base, q string) (rows [][]any, errText string) {
	t.Helper()
	resp, err := http.Get(base + "/console/api/query?" + url.Values{"q": {q}}.Encode())
	require.NoError(t, err)
	defer resp.Body.Close()
	var doc struct {
		Rows  [][]any `json:"rows"`
		Error string  `json:"error"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&doc))
	return doc.Rows, doc.Error
}

// TestConsoleInABrowser drives the console of a dev fleet running the
// shop demo in headless chromium: the graph shows every step moving; a
// record dead-lettered because the fx lookup table lost its GBP row is
// opened, and after the row is back it is replayed from the page (dry run,
// then confirmation) and shows up in the customer_ltv mart; a query draws a
// table and a chart, a bad one shows its error; and the console of a
// supervisor started without --console-write refuses a replay and a
// pause, and nothing is replayed. Screenshots of each page go to
// docs/console/ with UPDATE_SCREENSHOTS=1 (docs/console.md shows them).
func TestConsoleInABrowser(t *testing.T) {
	t.Parallel()
	chromium(t) // skip (or fail under CI) before starting a fleet
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	dev := startDev(t, t.TempDir(), "--demo", "--demo-rate", "20", "--console-write")
	base := "http://" + dev.http
	requireReadyLine(t, dev.proc.out.String())

	// A lookup table missing a row is a cause fixed outside the record:
	// the transform step dead-letters GBP orders until the row is back.
	fx := examples.Shop().Lookup("fx")
	allRows, err := fx.ReadRows()
	require.NoError(t, err)
	var noGBP []map[string]any
	for _, r := range allRows {
		if r["currency"] != "GBP" {
			noGBP = append(noGBP, r)
		}
	}
	_, err = transform.LoadTable(ctx, dev.js, fx, noGBP, 1)
	require.NoError(t, err)
	transformLetters := func() []supervisor.DeadLetter {
		dls, err := supervisor.ListDeadLetters(ctx, dev.js, supervisor.DLQFilter{Step: subjects.StepTransform.Name, Dataset: "orders"})
		require.NoError(t, err)
		return dls
	}
	// A demo GBP order dead-lettered by transform shows the worker has
	// seen the row go; only then is the test's own order published.
	embeddedtest.WaitFor(t, time.Minute, "a demo GBP order dead-lettered by transform", func() bool { return len(transformLetters()) > 0 })
	order := fmt.Sprintf(`{"order_id":"console-1","customer_id":"c-console","amount":100,"currency":"GBP","country":"GB","ts":%q}`,
		time.Now().UTC().Format(time.RFC3339))
	m := nats.NewMsg(subjects.Ingest("orders"))
	m.Data = []byte(order)
	m.Header.Set(subjects.HeaderMsgID, "console-test-1")
	_, err = dev.js.PublishMsg(ctx, m)
	require.NoError(t, err)
	var ours supervisor.DeadLetter
	embeddedtest.WaitFor(t, time.Minute, "the test's order dead-lettered by transform", func() bool {
		for _, d := range transformLetters() {
			if strings.Contains(string(d.Data), "c-console") {
				ours = d
				return true
			}
		}
		return false
	})
	require.Contains(t, ours.Reason, "lookup fx: no row for currency")
	// The fix: the row is back before anyone replays.
	_, err = transform.LoadTable(ctx, dev.js, fx, allRows, 1)
	require.NoError(t, err)

	tab := browser(t, ctx)
	// do runs browser actions with a bound of their own, so a stuck step
	// fails with its name rather than the test's deadline.
	do := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		c, cancel := context.WithTimeout(tab, 45*time.Second)
		defer cancel()
		require.NoError(t, chromedp.Do(c, actions...), what)
	}
	// show switches the page's tab as its links do (a fragment change
	// loads nothing, so there is no load to wait for).
	show := func(tabName string) chromedp.Action[chromedp.Void] {
		return chromedp.Evaluate[chromedp.Void](`location.hash = "#` + tabName + `"`)
	}

	// wait polls a JavaScript predicate until it holds.
	wait := func(what, predicate string) {
		t.Helper()
		_, err := chromedp.Run(tab, chromedp.Poll[chromedp.Void](predicate,
			chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(90*time.Second)))
		require.NoError(t, err, "waiting for %s", what)
	}
	text := func(sel string) string {
		t.Helper()
		c, cancel := context.WithTimeout(tab, 45*time.Second)
		defer cancel()
		s, err := chromedp.Run(c, chromedp.Text(chromedp.CSS(sel)))
		require.NoError(t, err, "text of %s", sel)
		return s
	}

	// The graph: every step of the orders flow with records through it.
	do("open the console", chromedp.Navigate(base+"/"))
	counts, err := chromedp.Run(tab, chromedp.Poll[map[string]int](`(() => {
		const c = {};
		document.querySelectorAll('#graph .node[data-step][data-dataset="orders"]').forEach(n => c[n.dataset.step] = Number(n.dataset.processed));
		return c.validate > 0 && c.transform > 0 && c.aggregate > 0 ? c : null;
	})()`, chromedp.WithPollingInterval(200*time.Millisecond), chromedp.WithPollingTimeout(90*time.Second)))
	require.NoError(t, err, "the graph's steps count records")
	for _, step := range []string{"validate", "transform", "aggregate"} {
		require.Positive(t, counts[step], "step %s in the graph", step)
	}
	// A step's workers, on click.
	do("open a step", chromedp.Click(chromedp.CSS(`#graph .node[data-step="validate"]`)), chromedp.WaitVisible(chromedp.CSS(`#step-detail table`)))
	workersText := text(`#step-detail`)
	require.Contains(t, workersText, "alive")
	require.Contains(t, workersText, "validate / orders")

	// Dead letters: filter to transform, open ours, replay it.
	do("dead letters tab", show("dead-letters"))
	wait("the step filter", `document.querySelector('#dl-filter select[name=step] option[value="transform"]') !== null`)
	do("filter dead letters",
		chromedp.SetValue(chromedp.CSS(`#dl-filter select[name=step]`), "transform"),
		chromedp.SetValue(chromedp.CSS(`#dl-filter input[name=reason]`), "lookup fx"),
		chromedp.Click(chromedp.CSS(`#dl-filter button[type=submit]`)),
	)
	row := fmt.Sprintf(`#dl-list tr[data-seq="%d"]`, ours.Seq)
	wait("the filtered list", `document.querySelectorAll('#dl-list tbody tr[data-seq]').length > 0 &&
		[...document.querySelectorAll('#dl-list tbody td:nth-child(3)')].every(td => td.textContent === 'transform')`)
	do("open our dead letter", chromedp.WaitVisible(chromedp.CSS(row)), chromedp.Click(chromedp.CSS(row)), chromedp.WaitVisible(chromedp.CSS(`#dl-detail pre.body`)))
	require.Contains(t, text(`#dl-detail pre.body`), `"customer_id":"c-console"`)
	require.Contains(t, text(`#dl-detail .reason`), "no row for currency")

	do("preview the replay", chromedp.Click(chromedp.CSS(`#dl-replay-one`)), chromedp.WaitVisible(chromedp.CSS(`#dl-confirm`)))
	require.Contains(t, text(`#dl-preview`), "1 dead letter(s) would go back to "+subjects.Valid("orders"))
	screenshot(t, tab, "dead-letters")
	do("confirm the replay", chromedp.Click(chromedp.CSS(`#dl-confirm`)), chromedp.WaitVisible(chromedp.CSS(`#dl-message`)))
	require.Contains(t, text(`#dl-message`), "replayed 1")
	d, err := supervisor.GetDeadLetter(ctx, dev.js, ours.Seq)
	require.NoError(t, err)
	require.NotNil(t, d.Replayed, "the dead letter is marked replayed")

	// The replayed order reaches the marts.
	ltv := "SELECT customer_id, orders, round(revenue_usd, 2) AS revenue_usd FROM customer_ltv WHERE customer_id = 'c-console'"
	embeddedtest.WaitFor(t, time.Minute, "the replayed order in customer_ltv", func() bool {
		rows, errText := consoleQuery(t, base, ltv)
		return errText == "" && len(rows) == 1
	})

	// Marts and the query box: the replayed order as a table, then a
	// chart over days, then an error shown inline.
	runQuery := func(q string) {
		t.Helper()
		do("run "+q,
			chromedp.SetValue(chromedp.CSS(`#query-text`), q),
			chromedp.Click(chromedp.CSS(`#query-form button[type=submit]`)),
		)
		wait("the answer to "+q, `document.querySelector('#query-info').textContent !== 'running…'`)
	}
	do("marts tab", show("marts"))
	wait("the marts table", `document.querySelector('#marts-table tr[data-mart="customer_ltv"]') !== null`)
	runQuery(ltv)
	cells, err := chromedp.Run(tab, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#query-result tbody td')].map(td => td.textContent)`))
	require.NoError(t, err)
	require.Equal(t, []string{"c-console", "1", "127"}, cells, "100 GBP at 1.27")

	runQuery("SELECT day, sum(orders) AS orders, round(sum(revenue_usd) / sum(orders), 2) AS avg_order_usd\nFROM daily_sales GROUP BY day ORDER BY day")
	shape, err := chromedp.Run(tab, chromedp.Evaluate[map[string]int](`({
		rows: document.querySelectorAll('#query-result tbody tr').length,
		lines: document.querySelectorAll('#query-chart svg.line-chart polyline.series').length,
		points: document.querySelectorAll('#query-chart svg.line-chart circle').length,
		chartHidden: document.querySelector('#query-chart').hidden ? 1 : 0,
	})`))
	require.NoError(t, err)
	require.Positive(t, shape["rows"], "the daily sales table")
	require.Equal(t, 0, shape["chartHidden"], "a result with a date column is charted")
	require.Equal(t, 2, shape["lines"], "one line per numeric column")
	require.Equal(t, 2*shape["rows"], shape["points"], "a point per row and line")
	screenshot(t, tab, "marts")

	runQuery("SELECT no_such_column FROM daily_sales")
	require.Contains(t, text(`#query-error`), "no_such_column")
	rowsLeft, err := chromedp.Run(tab, chromedp.Evaluate[int](`document.querySelectorAll('#query-result tr').length`))
	require.NoError(t, err)
	require.Zero(t, rowsLeft, "a failed query leaves no stale table")

	// Alerts: the pipeline's rules with their cooldowns.
	do("alerts tab", show("alerts"))
	wait("the rules", `document.querySelector('#rules').textContent.includes('big_order')`)
	require.Contains(t, text(`#rules`), "10m0s")
	screenshot(t, tab, "alerts")

	// The pipeline page last, when the charts have a few samples.
	do("pipeline tab", show("pipeline"))
	// The supervisor measures a rate over a minute of beats, and the
	// history samples every 5s: the first rate shows after a few samples.
	chart := `#charts [data-chart="validate/orders"]`
	wait("a rate in the charts", `Number(document.querySelector('`+chart+`')?.dataset.maxRate) > 0 &&
		document.querySelectorAll('`+chart+` svg polyline').length === 2`)
	ratePoints, err := chromedp.Run(tab, chromedp.Evaluate[int](`document.querySelector('`+chart+` svg polyline[stroke="#2f5fd0"]').getAttribute('points').trim().split(' ').length`))
	require.NoError(t, err)
	require.GreaterOrEqual(t, ratePoints, 2, "the rate of validate drawn as a line")
	do("open transform", chromedp.Click(chromedp.CSS(`#graph .node[data-step="transform"]`)), chromedp.WaitVisible(chromedp.CSS(`#step-detail table`)))
	screenshot(t, tab, "pipeline")

	// With --console-write a step pauses and resumes from its panel.
	do("pause validate",
		chromedp.Click(chromedp.CSS(`#graph .node[data-step="validate"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#step-detail button[data-op="pause"]`)),
		chromedp.Click(chromedp.CSS(`#step-detail button[data-op="pause"]`)),
	)
	wait("the pause answer", `document.querySelector('#ctl-message')?.textContent.includes(': paused')`)
	wait("validate shown paused", `document.querySelector('#graph .node[data-step="validate"]')?.classList.contains('paused')`)
	do("resume validate", chromedp.Click(chromedp.CSS(`#step-detail button[data-op="resume"]`)))
	wait("the resume answer", `document.querySelector('#ctl-message')?.textContent.includes(': running')`)
	require.NotContains(t, text(`#ctl-message`), "refused")

	// A supervisor's console without --console-write: it reads, and
	// refuses to write.
	supHTTP := fmt.Sprintf("127.0.0.1:%d", embeddedtest.FreePort(t))
	sup := start(t, dev.env, "supervisor", "--http", supHTTP, "--log-format", "json")
	embeddedtest.WaitFor(t, 30*time.Second, "supervisor serving", func() bool { return strings.Contains(sup.out.String(), "the console at /") })
	validateLetters, err := supervisor.ListDeadLetters(ctx, dev.js, supervisor.DLQFilter{Step: subjects.StepValidate.Name, Dataset: "orders"})
	require.NoError(t, err)
	require.NotEmpty(t, validateLetters, "the demo's invalid orders")
	invalid := validateLetters[len(validateLetters)-1]
	row = fmt.Sprintf(`#dl-list tr[data-seq="%d"]`, invalid.Seq)
	do("the supervisor's console", chromedp.Navigate("http://"+supHTTP+"/#dead-letters"))
	wait("the dead letter list", fmt.Sprintf(`document.querySelector('%s') !== null`, row))
	do("try a replay",
		chromedp.Click(chromedp.CSS(row)), chromedp.WaitVisible(chromedp.CSS(`#dl-replay-one`)),
		chromedp.Click(chromedp.CSS(`#dl-replay-one`)), chromedp.WaitVisible(chromedp.CSS(`#dl-confirm`)), // a dry run only reads
		chromedp.Click(chromedp.CSS(`#dl-confirm`)), chromedp.WaitVisible(chromedp.CSS(`#dl-message.error`)),
	)
	require.Contains(t, text(`#dl-message`), "replay refused: write actions are off")
	require.Equal(t, "read-only", text(`#write-mode`))
	do("pipeline tab", show("pipeline"))
	do("try a pause",
		chromedp.WaitVisible(chromedp.CSS(`#graph .node[data-step="validate"]`)),
		chromedp.Click(chromedp.CSS(`#graph .node[data-step="validate"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#step-detail button[data-op="pause"]`)),
		chromedp.Click(chromedp.CSS(`#step-detail button[data-op="pause"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#ctl-message.error`)),
	)
	require.Contains(t, text(`#ctl-message`), "pause refused: write actions are off")
	d, err = supervisor.GetDeadLetter(ctx, dev.js, invalid.Seq)
	require.NoError(t, err)
	require.Nil(t, d.Replayed, "the refused replay published nothing")
	st, err := supervisor.Snapshot(ctx, dev.js)
	require.NoError(t, err)
	for _, s := range st.Steps {
		require.False(t, s.Paused, "step %s/%s paused by a refused request", s.Step, s.Dataset)
	}
}

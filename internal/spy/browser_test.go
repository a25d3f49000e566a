package spy

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/sandbox"
)

// chromium returns the path of the browser, Debian's chromium unless
// MCL_CHROMIUM names another. Without one the test fails under
// MCL_REQUIRE_BROWSER=1 or MCL_REQUIRE_SANDBOX=1, and skips otherwise.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("MCL_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"} {
		if p == "" {
			continue
		}
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	msg := "no chromium to drive: apt-get install chromium, or set MCL_CHROMIUM to a Chrome or Chromium"
	if os.Getenv("MCL_REQUIRE_BROWSER") == "1" || os.Getenv("MCL_REQUIRE_SANDBOX") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

const (
	hostileTopic   = `<img src=x onerror=alert(1)>`
	hostileScript  = `<script>alert(2)</script>`
	hostilePwn     = `<img src=x onerror="window.__pwned=1">`
	hostileKeyPwn  = `<b onmouseover="window.__pwned=2">key</b>`
	browserTimeout = 20 * time.Second
)

// TestBrowser serves the page inside the sandbox network, publishes known
// traffic with the mcl library, and drives Debian's headless chromium: the
// page must show the topics and their counts, a message's JSON tree, a
// plotted field's last value, and hostile topics and payloads as text
// without running anything. With MCL_SPY_SCREENSHOT=path it saves a
// screenshot of the page there (docs/spy.png).
func TestBrowser(t *testing.T) {
	sandbox.Require(t)
	browser := chromium(t)

	// The spy: a Subscriber on a group of the sandbox, feeding a Server.
	const port = 27400
	conn, err := mcl.NewConnection(mcl.DefaultGroup, mcl.Port(port))
	if err != nil {
		t.Fatal(err)
	}
	srv := New(Config{Where: conn.String(), Keep: 20})
	sub, err := mcl.Subscribe(conn, func(m *mcl.Message) { srv.Add(m.Topic, m.Payload, m.Sender, m.Received) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv.Handler()}
	go hs.Serve(ln)
	defer hs.Close()
	base := "http://" + ln.Addr().String() + "/"

	pconn, err := mcl.NewConnection(mcl.DefaultGroup, mcl.Port(port))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := mcl.NewPublisher(pconn)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	publish := func(topic string, v any) {
		t.Helper()
		if err := pub.Publish(topic, v); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	pose := func(i int) map[string]any {
		return map[string]any{
			"pose":   map[string]any{"x": float64(i) / 2, "y": -float64(i), "frame": "map"},
			"ranges": []any{1.0, 2.0, 3.0, 0.25 * float64(i)},
			"ok":     i%2 == 0,
		}
	}
	for i := range 20 {
		publish("robot/pose", pose(i))
		if i < 10 {
			publish("robot/gps", map[string]any{"lat": -33.89, "lon": 151.19 + float64(i)/1000})
		}
		if i < 3 {
			publish(hostileTopic, map[string]any{"html": hostileScript, "img": hostilePwn, hostileKeyPwn: []any{hostileScript}})
		}
	}
	waitFor(t, "the server to count the messages", func() bool {
		f := srv.Frame(Query{})
		return f.Topics == 3 && f.Rows[0].Messages+f.Rows[1].Messages+f.Rows[2].Messages == 33
	})

	// The browser.
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU,
		chromedp.WindowSize(1500, 950), chromedp.Flag("no-proxy-server", true))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	var (
		mu         sync.Mutex
		dialogs    []string
		exceptions []string
	)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithListener(func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *page.EventJavascriptDialogOpening:
			dialogs = append(dialogs, e.Message)
		case *cdpruntime.EventExceptionThrown:
			d := e.ExceptionDetails
			msg := fmt.Sprintf("%s at %s:%d:%d", d.Text, d.URL, d.LineNumber+1, d.ColumnNumber+1)
			if d.Exception != nil {
				msg += ": " + d.Exception.Description
			}
			exceptions = append(exceptions, msg)
		}
	}))
	defer cancel()
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: "window.__pwned = 0;"}); err != nil {
		t.Fatal(err)
	}
	// The browser runs now. A dialog would block the page: close any that opens (the listener
	// has counted it, and the test fails).
	go func() {
		for ev, err := range chromedp.Events(ctx, page.JavascriptDialogOpening) {
			if err != nil {
				return
			}
			_ = ev
			chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	if err := chromedp.Do(ctx, chromedp.Navigate(base)); err != nil {
		t.Fatal(err)
	}
	eval := func(expr string, out any) {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[json.RawMessage](expr))
		if err != nil {
			t.Fatalf("evaluate %s: %v", expr, err)
		}
		if err := json.Unmarshal(v, out); err != nil {
			t.Fatalf("evaluate %s: %s: %v", expr, v, err)
		}
	}
	until := func(what, expr string) {
		t.Helper()
		deadline := time.Now().Add(browserTimeout)
		for {
			var ok bool
			eval("!!("+expr+")", &ok)
			if ok {
				return
			}
			if time.Now().After(deadline) {
				var state string
				eval(`document.getElementById('summary').textContent + ' | ' + [...document.querySelectorAll('#rows tr')].map(tr => tr.textContent).join(' | ')`, &state)
				t.Fatalf("the page did not show %s within %v: %s", what, browserTimeout, state)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	click := func(sel string) {
		t.Helper()
		cctx, cancel := context.WithTimeout(ctx, browserTimeout)
		defer cancel()
		if err := chromedp.Do(cctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
			t.Fatalf("click %s: %v", sel, err)
		}
	}

	// The table: three topics and their counts, as text.
	until("three topics", `document.querySelectorAll('#rows tr').length === 3`)
	var rows [][2]string
	eval(`[...document.querySelectorAll('#rows tr')].map(tr => [tr.querySelector('td.topic').textContent, tr.querySelector('td.msgs').textContent])`, &rows)
	want := [][2]string{{hostileTopic, "3"}, {"robot/gps", "10"}, {"robot/pose", "20"}} // by name: "<" sorts first
	if fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Errorf("rows %q, want %q", rows, want)
	}
	var summary string
	eval(`document.getElementById('summary').textContent`, &summary)
	if !strings.Contains(summary, "3 topics (limit 10000)") || !strings.Contains(summary, "refused 0") {
		t.Errorf("summary %q", summary)
	}

	// Sort by messages, largest first; then filter by a pattern.
	click(`th[data-sort="messages"]`)
	until("rows sorted by messages", `document.querySelector('#rows tr td.topic').textContent === 'robot/pose' && document.querySelector('th[data-sort="messages"]').classList.contains('desc')`)
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#filter"), "robot/*")); err != nil {
		t.Fatal(err)
	}
	until("the filtered rows", `document.querySelectorAll('#rows tr').length === 2`)
	eval(`(() => { const f = document.getElementById('filter'); f.value = ''; f.dispatchEvent(new Event('input')); return true; })()`, new(bool))
	until("all rows again", `document.querySelectorAll('#rows tr').length === 3`)

	// Select robot/pose: its senders and last messages as JSON trees.
	rowOf := func(topic string) string {
		var id string
		q, _ := json.Marshal(topic)
		eval(`[...document.querySelectorAll('#rows tr')].find(tr => tr.querySelector('td.topic').textContent === `+string(q)+`).dataset.id`, &id)
		return `#rows tr[data-id="` + id + `"] td.topic`
	}
	click(rowOf("robot/pose"))
	until("the messages of robot/pose", `document.getElementById('d-topic').textContent === 'robot/pose' && document.querySelectorAll('#messages > details.msg').length === 20`)
	var tree struct {
		Open    bool
		X, R3   string
		Frame   string
		Keys    []string
		Senders int
	}
	eval(`(() => { const m = document.querySelector('#messages > details.msg');
		return { open: m.open,
			x: m.querySelector('.num[data-path="pose.x"]').textContent,
			r3: m.querySelector('.num[data-path="ranges[3]"]').textContent,
			frame: [...m.querySelectorAll('.str')].map(s => s.textContent).join(','),
			keys: [...m.querySelectorAll('.key')].map(k => k.textContent),
			senders: document.querySelectorAll('#senders li').length }; })()`, &tree)
	if !tree.Open || tree.X != "9.5" || tree.R3 != "4.75" || tree.Frame != `"map"` || tree.Senders != 1 {
		t.Errorf("tree of the last message: %+v", tree)
	}
	for _, k := range []string{"pose: ", "x: ", "ranges: ", "[3]: ", "ok: "} {
		if !strings.Contains(strings.Join(tree.Keys, "|"), k) {
			t.Errorf("tree keys %q lack %q", tree.Keys, k)
		}
	}
	// Collapse and expand a node.
	const node = `#messages > details.msg .tree > details > .kids > details`
	var open []bool
	eval(`[document.querySelector('`+node+`').open]`, &open)
	click(node + ` > summary`)
	eval(`[document.querySelector('`+node+`').open, document.querySelector('`+node+` .kids') !== null]`, &open)
	if open[0] || !open[1] {
		t.Errorf("a clicked node did not collapse: open, has children: %v", open)
	}
	click(node + ` > summary`)

	// Plot pose.x: it starts from the kept messages and follows new ones.
	click(`#messages > details.msg .num[data-path="pose.x"]`)
	until("pose.x plotted", `document.getElementById('field-value').dataset.lastValue === '9.5' && document.getElementById('field-value').dataset.points === '20'`)
	for i := 20; i < 30; i++ {
		publish("robot/pose", pose(i))
	}
	until("pose.x's new last value", `document.getElementById('field-value').dataset.lastValue === '14.5'`)
	var fieldPath string
	eval(`document.getElementById('field-path').textContent`, &fieldPath)
	if fieldPath != "pose.x" {
		t.Errorf("field path %q", fieldPath)
	}
	until("the rate plotted", `document.getElementById('rate-value').textContent.endsWith('Hz')`)
	var href string
	eval(`document.getElementById('download').getAttribute('href')`, &href)
	if !strings.HasPrefix(href, "api/messages?topic=") {
		t.Errorf("download link %q", href)
	}
	resp, err := http.Get(base + href)
	if err != nil {
		t.Fatal(err)
	}
	var lines int
	var last Message
	for dec := json.NewDecoder(resp.Body); dec.More(); lines++ {
		if err := dec.Decode(&last); err != nil {
			t.Fatal(err)
		}
	}
	resp.Body.Close()
	if lines != 20 || last.Seq != 30 || !strings.Contains(string(last.Payload), `"x":14.5`) {
		t.Errorf("download: %d lines, last %+v", lines, last)
	}

	if path := os.Getenv("MCL_SPY_SCREENSHOT"); path != "" {
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot in %s", path)
	}

	// Pause: no frame is applied until Resume.
	click("#pause")
	var frames1, frames2 string
	eval(`document.getElementById('status').dataset.frames`, &frames1)
	publish("robot/pose", pose(30))
	time.Sleep(400 * time.Millisecond)
	eval(`document.getElementById('status').dataset.frames`, &frames2)
	if frames1 != frames2 {
		t.Errorf("paused, yet frames went from %s to %s", frames1, frames2)
	}
	click("#pause")
	until("pose.x after resuming", `document.getElementById('field-value').dataset.lastValue === '15'`)

	// The hostile topic and payload are text.
	click(rowOf(hostileTopic))
	until("the hostile topic's messages", `document.querySelectorAll('#messages > details.msg').length === 3`)
	var shown struct {
		Title, Strs, Keys string
		Imgs, Scripts     int
		Pwned             any
	}
	eval(`(() => { const m = document.querySelector('#messages > details.msg');
		return { title: document.getElementById('d-topic').textContent,
			strs: [...m.querySelectorAll('.str')].map(s => s.textContent).join(','),
			keys: [...m.querySelectorAll('.key')].map(s => s.textContent).join(','),
			imgs: document.querySelectorAll('img').length,
			scripts: document.querySelectorAll('script').length,
			pwned: window.__pwned }; })()`, &shown)
	if shown.Title != hostileTopic || !strings.Contains(shown.Strs, `"<script>alert(2)</script>"`) || !strings.Contains(shown.Strs, `"<img src=x onerror=\"window.__pwned=1\">"`) || !strings.Contains(shown.Keys, hostileKeyPwn) {
		t.Errorf("hostile data not shown as text: %+v", shown)
	}
	// Hover the hostile key, in case it were markup.
	click(`#messages > details.msg .key`)
	time.Sleep(300 * time.Millisecond)
	eval(`(() => ({ imgs: document.querySelectorAll('img').length, scripts: document.querySelectorAll('script').length, pwned: window.__pwned }))()`, &shown)
	if shown.Imgs != 0 || shown.Scripts != 1 || shown.Pwned != float64(0) {
		t.Errorf("hostile data became markup or ran: %d img, %d script elements, window.__pwned = %v", shown.Imgs, shown.Scripts, shown.Pwned)
	}

	// Clear: the server forgets everything, the page empties.
	click("#clear")
	until("an empty table", `document.querySelectorAll('#rows tr').length === 0 && document.getElementById('summary').dataset.topics === '0'`)

	mu.Lock()
	defer mu.Unlock()
	if len(dialogs) > 0 {
		t.Errorf("dialogs opened: %q", dialogs)
	}
	if len(exceptions) > 0 {
		t.Errorf("JavaScript exceptions: %q", exceptions)
	}
}

// waitFor polls cond until it holds, or fails the test.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(browserTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

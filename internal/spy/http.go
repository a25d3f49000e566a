package spy

import (
	"bufio"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

//go:embed web
var webFS embed.FS

// CSP is the Content-Security-Policy of every response: scripts, styles
// and connections from the server's own origin only, no inline script or
// style, no plugins, no framing, no forms.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler returns the server's HTTP handler:
//
//	GET  /                 the page (and /app.js, /app.css)
//	GET  /events           Server-Sent Events: a "frame" event (a Frame as JSON) every interval
//	GET  /api/frame        one Frame as JSON
//	GET  /api/messages     the kept messages of ?topic=ID as JSON lines, oldest first
//	POST /api/clear        forget every topic (needs the header X-Mcl-Spy: 1)
//
// /events and /api/frame take ?sort=COLUMN&dir=asc|desc&filter=PATTERNS&topic=ID&since=SEQ.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	web, err := fs.Sub(webFS, "web")
	if err != nil {
		panic(err)
	}
	files := http.FileServerFS(web)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { files.ServeHTTP(w, r) })
	mux.HandleFunc("GET /app.js", func(w http.ResponseWriter, r *http.Request) { files.ServeHTTP(w, r) })
	mux.HandleFunc("GET /app.css", func(w http.ResponseWriter, r *http.Request) { files.ServeHTTP(w, r) })
	mux.HandleFunc("GET /events", s.serveEvents)
	mux.HandleFunc("GET /api/frame", s.serveFrame)
	mux.HandleFunc("GET /api/messages", s.serveMessages)
	mux.HandleFunc("POST /api/clear", s.serveClear)
	return s.guard(mux)
}

// guard sets the security headers and refuses requests whose Host is
// neither localhost nor an IP address (DNS rebinding), unless AnyHost.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		if !s.cfg.AnyHost && !localHost(r.Host) {
			http.Error(w, "mcl spy: Host "+strconv.Quote(r.Host)+" refused: use localhost or an IP address, or start mcl spy with --any-host", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// localHost reports whether a Host header names localhost or an IP
// address: a name that DNS rebinding cannot point at this server.
func localHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}

// query parses the parameters of /events and /api/frame.
func query(r *http.Request) (Query, error) {
	v := r.URL.Query()
	q := Query{Sort: v.Get("sort"), Desc: v.Get("dir") == "desc", Filter: v.Get("filter")}
	if q.Sort == "" {
		q.Sort = "name"
	}
	if !slices.Contains(Sorts, q.Sort) {
		return q, fmt.Errorf("sort %q: use one of %s", q.Sort, strings.Join(Sorts, ", "))
	}
	if d := v.Get("dir"); d != "" && d != "asc" && d != "desc" {
		return q, fmt.Errorf("dir %q: use asc or desc", d)
	}
	var err error
	if t := v.Get("topic"); t != "" {
		if q.Topic, err = strconv.ParseUint(t, 10, 64); err != nil {
			return q, fmt.Errorf("topic %q: not an id", t)
		}
	}
	if t := v.Get("since"); t != "" {
		if q.Since, err = strconv.ParseUint(t, 10, 64); err != nil {
			return q, fmt.Errorf("since %q: not a number", t)
		}
	}
	if len(q.Filter) > 4096 {
		return q, fmt.Errorf("filter longer than 4096 bytes")
	}
	return q, nil
}

func (s *Server) serveFrame(w http.ResponseWriter, r *http.Request) {
	q, err := query(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(s.Frame(q))
}

// serveEvents streams a frame every interval until the client goes. After
// the first frame the detail carries only the messages not sent before.
func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	q, err := query(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 64<<10)
	tick := time.NewTicker(s.cfg.Interval)
	defer tick.Stop()
	for {
		f := s.Frame(q)
		if d := f.Detail; d != nil && !d.Gone {
			if n := len(d.Messages); n > 0 {
				q.Since = d.Messages[n-1].Seq
			}
		}
		b, err := json.Marshal(f)
		if err != nil {
			return
		}
		bw.WriteString("event: frame\ndata: ")
		bw.Write(b) // JSON holds no raw newline
		bw.WriteString("\n\n")
		if bw.Flush() != nil || rc.Flush() != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
	}
}

// serveMessages writes the kept messages of a topic as JSON lines, each
// {"seq":..., "time":..., "sender":..., "size":..., "payload":...}.
func (s *Server) serveMessages(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseUint(r.URL.Query().Get("topic"), 10, 64)
	if err != nil {
		http.Error(w, "topic: not an id", http.StatusBadRequest)
		return
	}
	_, ms, ok := s.Messages(id)
	if !ok {
		http.Error(w, "no such topic (cleared?)", http.StatusNotFound)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/x-ndjson")
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="mcl-topic-%d.jsonl"`, id))
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for _, m := range ms {
		enc.Encode(m)
	}
	bw.Flush()
}

// serveClear forgets everything. The custom header makes a cross-origin
// request need a CORS preflight, which this server never grants, so no
// other web page can clear it.
func (s *Server) serveClear(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Mcl-Spy") != "1" {
		http.Error(w, "missing header X-Mcl-Spy: 1", http.StatusForbidden)
		return
	}
	s.Clear()
	w.WriteHeader(http.StatusNoContent)
}

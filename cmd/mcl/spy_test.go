package main

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/internal/spy"
	"github.com/mcl-go/mcl/sandbox"
)

// TestSpy runs mcl spy on a free port of 127.0.0.1, publishes known
// traffic, reads the counts from the server's JSON and stops it with
// Ctrl-C. The page itself is tested in a browser in internal/spy.
func TestSpy(t *testing.T) {
	sandbox.Require(t)
	port := int(nextPort.Add(1))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out lockedBuffer
	done := startCommandContext(t, ctx, &out, "spy", "--port", strconv.Itoa(port), "--http", "127.0.0.1:0", "--topic", "gps", "--topic", "imu", "--keep", "5")
	m := regexp.MustCompile(`on (http://127\.0\.0\.1:\d+/)\n`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no URL in %q", out.String())
	}
	publishKnown(t, publisherOn(t, mcl.DefaultGroup, port))
	var f spy.Frame
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(m[1] + "api/frame?sort=messages&dir=desc")
		if err != nil {
			t.Fatal(err)
		}
		f = spy.Frame{}
		err = json.NewDecoder(resp.Body).Decode(&f)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Rows) == 2 && f.Rows[0].Messages == 50 && f.Rows[1].Messages == 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("counts never reached gps 50, imu 20: %+v", f.Rows)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if f.Rows[0].Topic != "gps" || f.Rows[1].Topic != "imu" || f.Keep != 5 || f.Limit != 10000 {
		t.Errorf("frame %+v", f)
	}
	cancel()
	if r := wait(t, done); r.code != 0 {
		t.Fatalf("spy after Ctrl-C: %+v", r)
	}
}

func TestSpyUsage(t *testing.T) {
	for _, args := range [][]string{
		{"spy", "gps"},
		{"spy", "--http", ":8088"},
		{"spy", "--http", "localhost"},
		{"spy", "--keep", "0"},
		{"spy", "--keep", "100000"},
		{"spy", "--max-topics", "0"},
		{"spy", "--interval", "10ms"},
		{"spy", "--topic", "a/b*"},
	} {
		if r := mcl_(context.Background(), "", args...); r.code != 2 {
			t.Errorf("mcl %q: exit %d, want 2: %s", args, r.code, r.stderr)
		}
	}
}

package bridge

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/sandbox"
)

// jsServer starts an in-process NATS server with JetStream.
func jsServer(t testing.TB) *server.Server {
	t.Helper()
	dir := t.TempDir()
	return natsServer(t, func(o *server.Options) {
		o.JetStream = true
		o.StoreDir = dir
	})
}

// inOrder fails unless got is exactly want, in order.
func inOrder(t testing.TB, what string, got, want []rec) {
	t.Helper()
	if len(got) != len(want) {
		sameMessages(t, what, got, want)
		t.Fatalf("%s: got %d messages, want %d", what, len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s: message %d: topic %q (%d bytes), want %q (%d bytes)", what, i, got[i].topic, len(got[i].payload), want[i].topic, len(want[i].payload))
		}
	}
}

// TestStreamCatchUp: site A publishes while site B's bridge is not
// running; B's bridge, started later with the stream and its durable
// consumer, delivers everything it missed in order and once, then the live
// messages; a restart of B's bridge delivers nothing acknowledged again,
// only what was published while it was away.
func TestStreamCatchUp(t *testing.T) {
	srv := jsServer(t)
	url := srv.ClientURL()
	a, b := newSite(t, "A", "239.192.35.1"), newSite(t, "B", "239.192.35.1")
	ba := a.bridge(t, url, Stream("MCL"), Durable("siteA"))
	colB := b.collect(t)
	pa := a.publisher(t)

	// B's bridge is not running.
	missed := publishSet(t, pa, "missed", 200, []int{1 << 20})
	stored := func(n int) {
		t.Helper()
		var s Stats
		eventually(t, func() bool { s = ba.Stats(); return s.ToNATS >= uint64(n) }, func() string {
			return fmt.Sprintf("bridge A: stored %d of %d, dropped %d", s.ToNATS, n, s.Dropped)
		})
		if s.ToNATS != uint64(n) || s.Dropped != 0 {
			t.Fatalf("bridge A: stored %d of %d, dropped %d", s.ToNATS, n, s.Dropped)
		}
	}
	stored(len(missed))

	// The stream the bridge created.
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	st, err := js.Stream(context.Background(), "MCL")
	if err != nil {
		t.Fatal(err)
	}
	info := st.CachedInfo()
	if info.Config.Subjects[0] != "mcl.>" || info.Config.MaxBytes != DefaultStreamMaxBytes || info.Config.MaxAge != DefaultStreamMaxAge || info.State.Msgs != uint64(len(missed)+1) {
		t.Fatalf("stream: subjects %v, max bytes %d, max age %v, %d messages", info.Config.Subjects, info.Config.MaxBytes, info.Config.MaxAge, info.State.Msgs)
	}
	m, err := st.GetMsg(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if id := m.Header.Get(nats.MsgIdHdr); id != ba.ID()+"-1" {
		t.Errorf("Nats-Msg-Id %q, want %q", id, ba.ID()+"-1")
	}

	// B's bridge catches up, then goes on live.
	bb := b.bridge(t, url, Stream("MCL"), Durable("siteB"))
	inOrder(t, "site B, caught up", colB.wait(len(missed), 10*time.Second), missed)
	live := publishSet(t, pa, "live", 100, nil)
	all := append(append([]rec(nil), missed...), live...)
	colB.wait(len(all), 10*time.Second)
	inOrder(t, "site B, live", colB.settle(t, pa, 10*time.Second), all)
	var sb Stats
	eventually(t, func() bool { sb = bb.Stats(); return sb.FromNATS == uint64(len(all)+1) }, func() string {
		return fmt.Sprintf("bridge B republished %d, want %d and an end marker", sb.FromNATS, len(all))
	})
	if sb.Joined != 1 || sb.Dropped+sb.Invalid+sb.Incomplete != 0 {
		t.Errorf("bridge B: %+v", sb)
	}

	// A restart of B's bridge: nothing acknowledged comes again; what was
	// published while it was away does.
	bb.Close()
	away := publishSet(t, pa, "away", 50, nil)
	stored(len(all) + 1 + len(away)) // and the end marker
	bb2 := b.bridge(t, url, Stream("MCL"), Durable("siteB"))
	all = append(all, away...)
	inOrder(t, "site B, after a restart", colB.wait(len(all), 10*time.Second), all)
	more := publishSet(t, pa, "more", 50, nil)
	all = append(all, more...)
	colB.wait(len(all), 10*time.Second)
	inOrder(t, "site B, live after the restart", colB.settle(t, pa, 10*time.Second), all)
	var s2 Stats
	eventually(t, func() bool { s2 = bb2.Stats(); return s2.FromNATS == uint64(len(away)+len(more)+1) }, func() string {
		return fmt.Sprintf("bridge B after the restart republished %d, want %d and an end marker", s2.FromNATS, len(away)+len(more))
	})
	sa := ba.Stats()
	t.Logf("bridge A: %+v", sa)
	t.Logf("bridge B: %+v", bb2.Stats())
	// What B republished on its group did not go back into the stream.
	info, err = st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(len(all) + 1 + 2); info.State.Msgs != want { // and two end markers
		t.Errorf("stream holds %d messages, want %d (A's only)", info.State.Msgs, want)
	}
	// A consumed its own messages from the stream and recognised them.
	if sa.FromNATS != 0 || sa.LoopsSuppressed == 0 {
		t.Errorf("bridge A: from NATS %d, loops suppressed %d", sa.FromNATS, sa.LoopsSuppressed)
	}
}

// TestStreamOptions: a stream without a durable name is refused when
// forwarding from NATS; a server without JetStream makes Run fail.
func TestStreamOptions(t *testing.T) {
	sandbox.Require(t)
	c, err := mcl.NewConnection("239.192.35.3", mcl.Port(int(nextPort.Add(1))))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(c, "nats://127.0.0.1:1", Stream("S")); !errors.Is(err, ErrBadOption) {
		t.Errorf("Stream without Durable: %v", err)
	}
	for _, o := range []Option{Stream("a.b"), Durable("x y"), StreamLimits(10, time.Hour)} {
		if _, err := New(c, "nats://127.0.0.1:1", o); !errors.Is(err, ErrBadOption) {
			t.Errorf("bad option accepted: %v", err)
		}
	}
	b, err := New(c, "nats://127.0.0.1:1", Stream("S"), Forward(ToNATS), Logger(nil))
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	b, err = New(c, "nats://127.0.0.1:1", Stream("S"), Name("site b.1"), Logger(nil))
	if err != nil {
		t.Fatal(err)
	}
	if b.cfg.durable != "site_b_1" {
		t.Errorf("durable %q", b.cfg.durable)
	}
	b.Close()

	srv := natsServer(t, nil)
	b, err = New(c, srv.ClientURL(), Stream("S"), Durable("d"), Logger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.cfg.settle = 10 * time.Millisecond
	if err := b.Run(context.Background()); err == nil {
		t.Error("Run without JetStream on the server: no error")
	}
}

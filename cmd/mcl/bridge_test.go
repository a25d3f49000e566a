package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/bridge"
	"github.com/mcl-go/mcl/sandbox"
)

func TestBridgeCommand(t *testing.T) {
	sandbox.Require(t)
	srv := natsServer(t, &server.Options{})
	port := int(nextPort.Add(1))
	conn, err := mcl.NewConnection("239.192.40.1", mcl.Port(port))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := startBridgeCommand(t, ctx, "--group", "239.192.40.1", "--port", strconv.Itoa(port),
		"--nats", srv.ClientURL(), "--subject-prefix", "site.a", "--topic", "cmd/*", "--json")

	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ns, err := nc.SubscribeSync("site.a.>")
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	gs, err := mcl.SubscribeSync(conn, mcl.Topics("cmd/in"))
	if err != nil {
		t.Fatal(err)
	}
	defer gs.Close()
	pub, err := mcl.NewPublisher(conn)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()

	// Group to NATS; a topic outside --topic stays on the group.
	pub.Publish("other", 1)
	if err := pub.Publish("cmd/out", map[string]any{"v": 1}); err != nil {
		t.Fatal(err)
	}
	m, err := ns.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "site.a.cmd.out" || m.Header.Get(bridge.HeaderTopic) != "cmd/out" || !bytes.Equal(m.Data, []byte{0x81, 0xa1, 'v', 1}) {
		t.Fatalf("on NATS: %s %v % x", m.Subject, m.Header, m.Data)
	}
	// NATS to group, from a plain NATS client: the topic from the subject.
	// The invalid message goes first: the bridge takes a subscription's
	// messages in order, so it has counted it once the valid one is out.
	nc.Publish("site.a.cmd.in", []byte("not msgpack {")) // counted invalid
	if err := nc.Publish("site.a.cmd.in", []byte{0x92, 1, 2}); err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer rcancel()
	gm, err := gs.Next(rctx)
	if err != nil {
		t.Fatal(err)
	}
	if gm.Topic != "cmd/in" || !bytes.Equal(gm.Payload, []byte{0x92, 1, 2}) {
		t.Fatalf("on the group: %q % x", gm.Topic, gm.Payload)
	}
	// The bridge reads its own cmd/in back from the group (a loop it
	// suppresses) before a message published on the group after it: once
	// that one reaches NATS, every count is in.
	if err := pub.Publish("cmd/out", 2); err != nil {
		t.Fatal(err)
	}
	for { // ns also has what nc published on site.a.cmd.in
		m, err := ns.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("the second cmd/out on NATS: %v", err)
		}
		if m.Subject == "site.a.cmd.out" {
			if !bytes.Equal(m.Data, []byte{2}) {
				t.Fatalf("second cmd/out on NATS: % x", m.Data)
			}
			break
		}
	}

	cancel()
	r := <-done
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var st bridge.Stats
	if err := json.Unmarshal([]byte(strings.TrimSpace(r.stdout)), &st); err != nil {
		t.Fatalf("stdout %q: %v", r.stdout, err)
	}
	if st.ToNATS != 2 || st.FromNATS != 1 || st.Invalid != 1 || st.LoopsSuppressed != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestBridgeUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bridge"}, "--nats is required"},
		{[]string{"bridge", "--nats", "nats://127.0.0.1:1", "--direction", "up"}, "--direction"},
		{[]string{"bridge", "--nats", "nats://127.0.0.1:1", "--subject-prefix", "a.*"}, "subject prefix"},
		{[]string{"bridge", "--nats", "nats://127.0.0.1:1", "--topic", "cam*"}, "--topic"},
		{[]string{"bridge", "--nats", "nats://127.0.0.1:1", "--buffer-bytes", "10"}, "buffer limits"},
		{[]string{"bridge", "--nats", "nats://127.0.0.1:1", "--group", "10.0.0.1"}, "not a multicast group"},
		{[]string{"bridge", "--nats", "nats://127.0.0.1:1", "--stream", "S"}, "--durable"},
		{[]string{"bridge", "--nats", "nats://127.0.0.1:1", "--durable", "d"}, "--durable needs --stream"},
		{[]string{"bridge", "--nats", "nats://127.0.0.1:1", "--stream", "a.b", "--durable", "d"}, "stream"},
		{[]string{"bridge", "--nats", "nats://127.0.0.1:1", "--stream", "S", "--durable", "d", "--stream-max-bytes", "10"}, "stream limits"},
	} {
		r := mcl_(context.Background(), "", tc.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("mcl %q: exit %d, stderr %q; want 2 and %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
}

func TestBridgeStream(t *testing.T) {
	sandbox.Require(t)
	srv := natsServer(t, &server.Options{JetStream: true, StoreDir: t.TempDir()})
	port := int(nextPort.Add(1))
	conn, err := mcl.NewConnection("239.192.40.2", mcl.Port(port))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := startBridgeCommand(t, ctx, "--group", "239.192.40.2", "--port", strconv.Itoa(port),
		"--nats", srv.ClientURL(), "--stream", "MCLCMD", "--name", "site a", "--stream-max-age", "1h", "--json")
	pub, err := mcl.NewPublisher(conn)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if err := pub.Publish("cmd/out", 7); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	var st *jetstream.StreamInfo
	for i := 0; i < 100; i++ {
		s, err := js.Stream(ctx, "MCLCMD")
		if err != nil {
			t.Fatal(err)
		}
		if st = s.CachedInfo(); st.State.Msgs == 1 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st.State.Msgs != 1 || st.Config.MaxAge != time.Hour || st.Config.MaxBytes != bridge.DefaultStreamMaxBytes {
		t.Fatalf("stream: %d messages, max age %v, max bytes %d", st.State.Msgs, st.Config.MaxAge, st.Config.MaxBytes)
	}
	if _, err := js.Consumer(ctx, "MCLCMD", "site_a"); err != nil {
		t.Errorf("durable consumer site_a (from --name): %v", err)
	}
	cancel()
	if r := <-done; r.code != 0 || !strings.Contains(r.stdout, `"to_nats":1`) {
		t.Fatalf("exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
}

// natsServer starts an in-process NATS server on 127.0.0.1 with o's
// settings, shut down with the test.
func natsServer(t *testing.T, o *server.Options) *server.Server {
	t.Helper()
	o.Host, o.Port, o.NoLog, o.NoSigs = "127.0.0.1", -1, true, true
	srv, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(5 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	return srv
}

// startBridgeCommand runs `mcl bridge args...` until ctx ends, and returns
// once the bridge has started, with where its result will come.
func startBridgeCommand(t *testing.T, ctx context.Context, args ...string) <-chan result {
	t.Helper()
	started := make(chan *bridge.Bridge, 1)
	bridgeStarted = func(b *bridge.Bridge) { started <- b }
	t.Cleanup(func() { bridgeStarted = func(*bridge.Bridge) {} })
	done := make(chan result, 1)
	go func() { done <- mcl_(ctx, "", append([]string{"bridge"}, args...)...) }()
	select {
	case <-started:
	case r := <-done:
		t.Fatalf("mcl bridge exited: %+v", r)
	case <-time.After(10 * time.Second):
		t.Fatal("mcl bridge did not start")
	}
	return done
}

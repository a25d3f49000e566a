package mcl_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/mcl-go/mcl"
)

// GPSFix and IMUReading are the message types of these tests.
type GPSFix struct {
	Lat   float64 `msgpack:"lat"`
	Lon   float64 `msgpack:"lon"`
	Frame string  `msgpack:"frame,omitempty"`
	Seq   int     `msgpack:"seq,omitempty"`
}

type IMUReading struct {
	Accel []float64 `msgpack:"accel"`
}

func init() {
	mcl.MustRegister[GPSFix]("gps")
	mcl.MustRegister[IMUReading]("imu")
}

func typedPublisher[T any](t *testing.T, c *mcl.Connection) *mcl.TypedPublisher[T] {
	t.Helper()
	p, err := mcl.NewTypedPublisher[T](c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func typedSync[T any](t *testing.T, c *mcl.Connection, opts ...mcl.SubscribeOption) *mcl.TypedSubscriber[T] {
	t.Helper()
	s, err := mcl.SubscribeTypedSync[T](c, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// next pulls one typed message, failing the test after a deadline.
func next[T any](t *testing.T, s *mcl.TypedSubscriber[T]) *mcl.TypedMessage[T] {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v (stats %+v)", err, s.Stats())
	}
	return m
}

// payloadMap decodes a payload as a plain map, as a Python node would.
func payloadMap(t *testing.T, payload []byte) map[string]any {
	t.Helper()
	var v map[string]any
	if err := msgpack.Unmarshal(payload, &v); err != nil {
		t.Fatalf("payload % x is not a map: %v", payload, err)
	}
	return v
}

func TestRegister(t *testing.T) {
	type (
		fresh    struct{ A int }
		other    struct{ B int }
		named    struct{ Name string } // key "Name": keys are case-sensitive
		reserved struct {
			Who string `msgpack:"name"`
		}
		tagged struct {
			When float64 `msgpack:"timestamp"`
		}
		ignored struct {
			Name string `msgpack:"-"`
			N    int    `msgpack:"name_"`
		}
		inner struct {
			Name int `msgpack:"name"`
		}
		embeds struct {
			inner
			X int
		}
		asArray struct {
			_msgpack struct{} `msgpack:",as_array"`
			A        int
		}
	)
	if name, ok := mcl.TypeName[GPSFix](); !ok || name != "gps" {
		t.Errorf("TypeName[GPSFix] = %q, %v", name, ok)
	}
	if _, ok := mcl.TypeName[fresh](); ok {
		t.Error("TypeName of an unregistered type reports a name")
	}
	for _, tc := range []struct {
		what string
		err  error
		want error
	}{
		{"int", mcl.Register[int]("n"), mcl.ErrBadType},
		{"pointer to struct", mcl.Register[*GPSFix]("p"), mcl.ErrBadType},
		{"empty name", mcl.Register[fresh](""), mcl.ErrBadOption},
		{"field tagged name", mcl.Register[reserved]("reserved"), mcl.ErrBadType},
		{"field tagged timestamp", mcl.Register[tagged]("tagged"), mcl.ErrBadType},
		{"embedded field Name", mcl.Register[embeds]("embeds"), mcl.ErrBadType},
		{"as_array", mcl.Register[asArray]("array"), mcl.ErrBadType},
		{"name of another type", mcl.Register[fresh]("gps"), mcl.ErrAlreadyRegistered},
		{"type under another name", mcl.Register[GPSFix]("gps2"), mcl.ErrAlreadyRegistered},
		{"same type and name again", mcl.Register[GPSFix]("gps"), nil},
		{"ignored and differently named fields", mcl.Register[ignored]("ignored"), nil},
		{"field Name, key Name", mcl.Register[named]("named"), nil},
	} {
		if !errors.Is(tc.err, tc.want) || (tc.want != nil && !strings.HasPrefix(tc.err.Error(), "mcl: ")) {
			t.Errorf("%s: %v, want %v", tc.what, tc.err, tc.want)
		}
	}
	if err := mcl.Register[other]("gps"); err == nil || !strings.Contains(err.Error(), "GPSFix") {
		t.Errorf("duplicate name error %v does not name the registered type", err)
	}
	func() {
		defer func() {
			if r := recover(); r == nil {
				t.Error("MustRegister of a bad type did not panic")
			}
		}()
		mcl.MustRegister[int]("int")
	}()

	c, err := mcl.NewConnection(mcl.DefaultGroup) // no socket is opened before the check
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mcl.NewTypedPublisher[fresh](c); !errors.Is(err, mcl.ErrNotRegistered) {
		t.Errorf("NewTypedPublisher of an unregistered type: %v", err)
	}
	if _, err := mcl.SubscribeTyped(c, func(*mcl.TypedMessage[fresh]) {}); !errors.Is(err, mcl.ErrNotRegistered) {
		t.Errorf("SubscribeTyped of an unregistered type: %v", err)
	}
	if _, err := mcl.SubscribeTypedSync[fresh](c); !errors.Is(err, mcl.ErrNotRegistered) {
		t.Errorf("SubscribeTypedSync of an unregistered type: %v", err)
	}
	if _, err := mcl.SubscribeTyped[GPSFix](c, nil); !errors.Is(err, mcl.ErrBadOption) {
		t.Errorf("SubscribeTyped with a nil handler: %v", err)
	}
}

func TestTypedRoundTrip(t *testing.T) {
	c := conn(t, mcl.DefaultGroup)
	got := make(chan mcl.TypedMessage[GPSFix], 100)
	sub, err := mcl.SubscribeTyped(c, func(m *mcl.TypedMessage[GPSFix]) {
		v := *m
		v.Message = m.Message.Clone()
		got <- v
	}, mcl.Topics("gps"))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	pull := typedSync[GPSFix](t, c, mcl.Topics("gps"))
	pub := typedPublisher[GPSFix](t, c)

	const n = 20
	before := time.Now()
	for i := range n {
		if err := pub.Publish("gps", GPSFix{Lat: -33.89, Lon: 151.19 + float64(i), Seq: i + 1, Frame: "wgs84"}); err != nil {
			t.Fatal(err)
		}
	}
	// An omitempty field may be absent: Frame and Seq are left out.
	at := time.Date(2017, 7, 14, 2, 40, 0, 123456000, time.UTC)
	if err := pub.PublishAt("gps", GPSFix{Lat: 1, Lon: 2}, at); err != nil {
		t.Fatal(err)
	}
	after := time.Now()

	for i := range n {
		var m mcl.TypedMessage[GPSFix]
		select {
		case m = <-got:
		case <-time.After(10 * time.Second):
			t.Fatalf("handler received %d of %d messages (stats %+v)", i, n, sub.Stats())
		}
		if want := (GPSFix{Lat: -33.89, Lon: 151.19 + float64(i), Seq: i + 1, Frame: "wgs84"}); m.Value != want {
			t.Fatalf("message %d: %+v, want %+v", i, m.Value, want)
		}
		if m.Timestamp.Before(before.Truncate(time.Microsecond)) || m.Timestamp.After(after) {
			t.Errorf("message %d: timestamp %v not between %v and %v", i, m.Timestamp, before, after)
		}
		if m.Message.Topic != "gps" || m.Message.Sender != pub.LocalAddr() {
			t.Errorf("message %d: topic %q from %s", i, m.Message.Topic, m.Message.Sender)
		}
		p := payloadMap(t, m.Message.Payload)
		if p["name"] != "gps" || p["frame"] != "wgs84" || len(p) != 6 {
			t.Errorf("message %d: payload %v", i, p)
		}
		if _, ok := p["timestamp"].(float64); !ok {
			t.Errorf("timestamp %T, want a float64", p["timestamp"])
		}
	}
	m := <-got
	if m.Value != (GPSFix{Lat: 1, Lon: 2}) || !m.Timestamp.Equal(at) {
		t.Errorf("PublishAt: %+v at %v, want at %v", m.Value, m.Timestamp, at)
	}
	if p := payloadMap(t, m.Message.Payload); len(p) != 4 || math.Abs(p["timestamp"].(float64)-float64(at.UnixMicro())/1e6) > 1e-6 {
		t.Errorf("PublishAt payload %v", p)
	}

	// The pull form got the same messages; the iterator ends with ctx.
	for i := range n {
		if m := next(t, pull); m.Value.Seq != i+1 {
			t.Fatalf("Next: message %d has seq %d", i, m.Value.Seq)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for m := range pull.Messages(ctx) {
		if m.Value.Seq != 0 || m.Value.Frame != "" || !m.Timestamp.Equal(at) {
			t.Errorf("Messages: %+v at %v: fields of an earlier message leaked in", m.Value, m.Timestamp)
		}
		break
	}
	if _, err := sub.Next(ctx); !errors.Is(err, mcl.ErrBadOption) {
		t.Errorf("Next on a handler subscriber: %v", err)
	}
	if st := sub.Stats(); st.Delivered != n+1 || st.LastDrop != nil || st.Subscriber.Delivered != n+1 {
		t.Errorf("stats %+v", st)
	}
	if st := pub.Stats(); st.Messages != n+1 || st.Errors != 0 {
		t.Errorf("publisher stats %+v", st)
	}
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish("gps", GPSFix{}); !errors.Is(err, mcl.ErrClosed) {
		t.Errorf("Publish after Close: %v", err)
	}
}

// TestTypedDrops sends messages a GPSFix subscriber must drop, each
// followed by one it must deliver, and checks the count and reason of
// each drop.
func TestTypedDrops(t *testing.T) {
	c := conn(t, mcl.DefaultGroup)
	sub := typedSync[GPSFix](t, c)
	raw := publisher(t, c)
	imu := typedPublisher[IMUReading](t, c)
	gps := typedPublisher[GPSFix](t, c)

	type counts struct{ notTyped, wrongName, missingField, decodeErrors uint64 }
	var total counts
	ts := 1.5e9
	for i, tc := range []struct {
		what    string
		send    func() error
		want    counts
		is      error
		mention []string
	}{
		{"another name", func() error { return imu.Publish("imu", IMUReading{Accel: []float64{0, 0, 9.8}}) },
			counts{wrongName: 1}, mcl.ErrWrongName, []string{`"imu"`, `want "gps"`, `topic "imu"`}},
		{"no lon", func() error {
			return raw.Publish("gps", map[string]any{"name": "gps", "timestamp": ts, "lat": 1.0})
		}, counts{missingField: 1}, mcl.ErrMissingField, []string{`"lon"`}},
		{"not a map", func() error { return raw.Publish("gps", 42) },
			counts{notTyped: 1}, mcl.ErrNotTyped, []string{"int", "not a map"}},
		{"an array", func() error { return raw.Publish("gps", []any{"gps", 1.0, 2.0}) },
			counts{notTyped: 1}, mcl.ErrNotTyped, []string{"array"}},
		{"no name", func() error { return raw.Publish("gps", map[string]any{"lat": 1.0, "lon": 2.0}) },
			counts{notTyped: 1}, mcl.ErrNotTyped, []string{`no "name"`}},
		{"name not a string", func() error {
			return raw.Publish("gps", map[string]any{"name": 7, "lat": 1.0, "lon": 2.0})
		}, counts{notTyped: 1}, mcl.ErrNotTyped, []string{"int"}},
		{"two names", func() error {
			b := msgp.AppendMapHeader(nil, 4)
			b = msgp.AppendString(msgp.AppendString(b, "name"), "gps")
			b = msgp.AppendString(msgp.AppendString(b, "name"), "imu")
			b = msgp.AppendFloat64(msgp.AppendString(b, "lat"), 1)
			b = msgp.AppendFloat64(msgp.AppendString(b, "lon"), 2)
			return raw.PublishRaw("gps", b)
		}, counts{wrongName: 1}, mcl.ErrWrongName, []string{`"imu"`}},
		{"field of the wrong type", func() error {
			return raw.Publish("gps", map[string]any{"name": "gps", "lat": "north", "lon": 2.0})
		}, counts{decodeErrors: 1}, nil, []string{"GPSFix"}},
	} {
		if err := tc.send(); err != nil {
			t.Fatal(err)
		}
		if err := gps.Publish("gps", GPSFix{Lat: 1, Lon: 2, Seq: i}); err != nil {
			t.Fatal(err)
		}
		if m := next(t, sub); m.Value.Seq != i {
			t.Fatalf("%s: delivered seq %d, want %d", tc.what, m.Value.Seq, i)
		}
		total.notTyped += tc.want.notTyped
		total.wrongName += tc.want.wrongName
		total.missingField += tc.want.missingField
		total.decodeErrors += tc.want.decodeErrors
		st := sub.Stats()
		if got := (counts{st.NotTyped, st.WrongName, st.MissingField, st.DecodeErrors}); got != total || st.Delivered != uint64(i+1) {
			t.Errorf("%s: counts %+v and %d delivered, want %+v and %d", tc.what, got, st.Delivered, total, i+1)
		}
		if st.LastDrop == nil || (tc.is != nil && !errors.Is(st.LastDrop, tc.is)) {
			t.Fatalf("%s: LastDrop %v, want %v", tc.what, st.LastDrop, tc.is)
		}
		for _, s := range tc.mention {
			if !strings.Contains(st.LastDrop.Error(), s) {
				t.Errorf("%s: LastDrop %q does not mention %s", tc.what, st.LastDrop, s)
			}
		}
		t.Logf("%s: %v", tc.what, st.LastDrop)
	}
}

// TestTypedHostile sends payloads whose headers claim far more than they
// hold: they are dropped without allocating what they claim, and the
// subscriber keeps working.
func TestTypedHostile(t *testing.T) {
	c := conn(t, mcl.DefaultGroup)
	sub := typedSync[GPSFix](t, c)
	u, err := net.DialUDP("udp6", nil, net.UDPAddrFromAddrPort(c.Group()))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	hostile := [][]byte{
		{0xdf, 0xff, 0xff, 0xff, 0xff, 0xa4, 'n', 'a', 'm', 'e', 0xa3, 'g', 'p', 's'},                                                       // map32 of 2^32-1 entries
		{0x83, 0xa4, 'n', 'a', 'm', 'e', 0xa3, 'g', 'p', 's', 0xa3, 'l', 'a', 't', 0xdd, 0xff, 0xff, 0xff, 0xff, 0xa3, 'l', 'o', 'n', 0x01}, // array32 field
		{0x82, 0xa4, 'n', 'a', 'm', 'e', 0xdb, 0xff, 0xff, 0xff, 0xff, 'g', 'p', 's'},                                                       // str32 name of 4 GiB
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for _, p := range hostile {
		frame := append([]byte{0x92, 0xa3, 'g', 'p', 's'}, p...)
		if _, err := u.Write(frame); err != nil {
			t.Fatal(err)
		}
	}
	pub := typedPublisher[GPSFix](t, c)
	if err := pub.Publish("gps", GPSFix{Lat: 1, Lon: 2, Seq: 9}); err != nil {
		t.Fatal(err)
	}
	if m := next(t, sub); m.Value.Seq != 9 {
		t.Fatalf("delivered %+v", m.Value)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
		t.Errorf("receiving %d hostile payloads allocated %d bytes", len(hostile), grew)
	}
	st := sub.Stats()
	if dropped := st.Subscriber.Malformed + st.NotTyped + st.DecodeErrors; dropped != uint64(len(hostile)) || st.Delivered != 1 {
		t.Errorf("stats %+v: want %d hostile payloads dropped and 1 delivered", st, len(hostile))
	}
}

func TestTypedConcurrentPublish(t *testing.T) {
	c := conn(t, mcl.DefaultGroup)
	sub := typedSync[GPSFix](t, c)
	pub := typedPublisher[GPSFix](t, c)
	const workers, each = 8, 50
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				v := GPSFix{Lat: float64(w), Lon: float64(i), Frame: strconv.Itoa(w), Seq: w*each + i}
				if err := pub.Publish("gps", v); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	seen := make(map[int]bool)
	for range workers * each {
		m := next(t, sub)
		v := m.Value
		if w, i := v.Seq/each, v.Seq%each; v.Lat != float64(w) || v.Lon != float64(i) || v.Frame != strconv.Itoa(w) || seen[v.Seq] {
			t.Fatalf("message %+v is corrupt or repeated", v)
		}
		seen[v.Seq] = true
	}
	if st := sub.Stats(); st.Delivered != workers*each || st.LastDrop != nil {
		t.Errorf("stats %+v", st)
	}
}

// TestTypedAllocations checks that, once warm, receiving a typed message
// whose fields are numbers allocates nothing, and neither does publishing
// one of a type without omitempty fields. (The msgpack library allocates
// to encode omitempty fields.)
func TestTypedAllocations(t *testing.T) {
	c := conn(t, mcl.DefaultGroup)
	sub := typedSync[GPSFix](t, c, mcl.Topics("gps"))
	raw := publisher(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fix, err := msgpack.Marshal(map[string]any{"name": "gps", "timestamp": 1.5e9, "lat": 1.0, "lon": 2.0, "seq": 3})
	if err != nil {
		t.Fatal(err)
	}
	n := testing.AllocsPerRun(1000, func() {
		if err := raw.PublishRaw("gps", fix); err != nil {
			t.Fatal(err)
		}
		if m, err := sub.Next(ctx); err != nil || m.Value.Seq != 3 {
			t.Fatal(m, err)
		}
	})
	if n != 0 {
		t.Errorf("typed receive: %.2f allocations, want 0", n)
	}

	pub := typedPublisher[IMUReading](t, c)
	accel := []float64{0, 0, 9.8}
	n = testing.AllocsPerRun(1000, func() {
		if err := pub.Publish("imu", IMUReading{Accel: accel}); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Errorf("typed publish: %.2f allocations, want 0", n)
	}
}

// TestTypedPythonToGo: the Python peer publishes typed messages as the
// original's Message objects, dicts packed Python-2 style (every string a
// raw str), and a Go subscriber decodes them.
func TestTypedPythonToGo(t *testing.T) {
	requirePython(t)
	c := conn(t, mcl.DefaultGroup)
	sub := typedSync[GPSFix](t, c, mcl.Topics("gps"))
	const script = `
import sys
sys.path.insert(0, 'interop')
import seedpeer
b = seedpeer.RawBroadcaster(seedpeer.Connection(sys.argv[1], int(sys.argv[2])), topic='gps')
b.publish({'name': 'imu', 'timestamp': 1.5e9, 'accel': [0.0, 0.0, 9.8]})
b.publish({'name': 'gps', 'timestamp': 1.5e9, 'lat': -33.89})
b.publish({'name': 'gps', 'timestamp': 1500000000.25, 'lat': -33.89, 'lon': 151.19, 'frame': 'wgs84', 'seq': 1})
b.publish({'name': 'gps', 'timestamp': 1500000001, 'lat': 1.0, 'lon': 2.0, 'extra': None})
b.close()
`
	out, err := exec.Command(python, "-c", script, c.Group().Addr().String(), strconv.Itoa(int(c.Group().Port()))).CombinedOutput()
	if err != nil {
		t.Fatalf("python publisher: %v\n%s", err, out)
	}
	m := next(t, sub)
	if want := (GPSFix{Lat: -33.89, Lon: 151.19, Frame: "wgs84", Seq: 1}); m.Value != want {
		t.Errorf("got %+v, want %+v", m.Value, want)
	}
	if want := time.Unix(1_500_000_000, 250_000_000); !m.Timestamp.Equal(want) {
		t.Errorf("timestamp %v, want %v", m.Timestamp, want)
	}
	if !bytes.Contains(m.Message.Payload, []byte("\xa4name\xa3gps")) {
		t.Errorf("payload % x does not hold name and value as raw str", m.Message.Payload)
	}
	m = next(t, sub)
	if m.Value != (GPSFix{Lat: 1, Lon: 2}) || !m.Timestamp.Equal(time.Unix(1_500_000_001, 0)) {
		t.Errorf("got %+v at %v", m.Value, m.Timestamp)
	}
	st := sub.Stats()
	if st.Delivered != 2 || st.WrongName != 1 || st.MissingField != 1 || !errors.Is(st.LastDrop, mcl.ErrMissingField) {
		t.Errorf("stats %+v", st)
	}
}

// TestTypedGoToPython: a Go typed publisher's message is a plain dict to
// the Python peer, with name, timestamp and fields.
func TestTypedGoToPython(t *testing.T) {
	requirePython(t)
	c := conn(t, mcl.DefaultGroup)
	const script = `
import sys, json, threading
sys.path.insert(0, 'interop')
import seedpeer
got, done = [], threading.Event()
def on_message(data):
    got.append(data['payload'])
    done.set()
l = seedpeer.RawListener(seedpeer.Connection(sys.argv[1], int(sys.argv[2])), topics='gps')
l.subscribe(on_message)
print('READY', flush=True)
if not done.wait(30):
    sys.exit('no message')
l.close()
p = got[0]
s = lambda v: v.decode('utf-8') if isinstance(v, bytes) else v
print(json.dumps({'type': type(p).__name__,
                  'timestamp_type': type(p.get(b'timestamp')).__name__,
                  'fields': {s(k): s(v) for k, v in p.items()}}))
`
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "-c", script, c.Group().Addr().String(), strconv.Itoa(int(c.Group().Port())))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	out := bufio.NewReader(stdout)
	if ready, err := out.ReadString('\n'); err != nil || ready != "READY\n" {
		t.Fatalf("python listener did not start: %q %v\n%s", ready, err, stderr.String())
	}
	pub := typedPublisher[GPSFix](t, c)
	at := time.Unix(1_500_000_000, 250_000_000)
	if err := pub.PublishAt("gps", GPSFix{Lat: -33.89, Lon: 151.19, Seq: 7}, at); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Type          string         `json:"type"`
		TimestampType string         `json:"timestamp_type"`
		Fields        map[string]any `json:"fields"`
	}
	if err := json.NewDecoder(out).Decode(&got); err != nil {
		t.Fatalf("python listener: %v\n%s", err, stderr.String())
	}
	want := map[string]any{"name": "gps", "timestamp": 1500000000.25, "lat": -33.89, "lon": 151.19, "seq": 7.0}
	if got.Type != "dict" || got.TimestampType != "float" || fmt.Sprint(got.Fields) != fmt.Sprint(want) {
		t.Errorf("python decoded %+v, want a dict with a float timestamp and fields %v", got, want)
	}
}

// Declare a message type, publish it, receive it. (Not run: it needs a
// network.)
func ExampleSubscribeTyped() {
	type Fix struct {
		Lat   float64 `msgpack:"lat"`
		Lon   float64 `msgpack:"lon"`
		Frame string  `msgpack:"frame,omitempty"` // optional
	}
	mcl.MustRegister[Fix]("fix")

	conn, err := mcl.NewConnection(mcl.DefaultGroup)
	if err != nil {
		panic(err)
	}
	sub, err := mcl.SubscribeTyped(conn, func(m *mcl.TypedMessage[Fix]) {
		fmt.Println(m.Message.Topic, m.Value.Lat, m.Value.Lon, m.Timestamp)
	}, mcl.Topics("gps"))
	if err != nil {
		panic(err)
	}
	defer func() {
		sub.Close()
		st := sub.Stats()
		fmt.Println(st.Delivered, "delivered; last drop:", st.LastDrop)
	}()

	pub, err := mcl.NewTypedPublisher[Fix](conn)
	if err != nil {
		panic(err)
	}
	defer pub.Close()
	pub.Publish("gps", Fix{Lat: -33.89, Lon: 151.19}) // {"lat": ..., "lon": ..., "name": "fix", "timestamp": ...}
}

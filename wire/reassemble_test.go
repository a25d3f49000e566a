package wire_test

import (
	"bytes"
	"cmp"
	"errors"
	"math"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcl-go/mcl/wire"
)

var (
	t0      = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	sender1 = netip.MustParseAddrPort("[fe80::1]:40000")
	sender2 = netip.MustParseAddrPort("[fe80::1]:40001") // same host, other publisher
)

// feed adds frames in the given order and returns what the last Add
// returned; every earlier Add must store its fragment.
func feed(t *testing.T, r *wire.Reassembler, src netip.AddrPort, frames []wire.Frame, order []int) ([]byte, error) {
	t.Helper()
	for k, i := range order {
		got, err := r.Add(src, frames[i], t0)
		if k == len(order)-1 {
			return got, err
		}
		if got != nil || err != nil {
			t.Fatalf("fragment %d (%d of %d): Add = %d bytes, %v; want stored", frames[i].Index, k+1, len(order), len(got), err)
		}
	}
	return nil, nil
}

func checkStats(t *testing.T, r *wire.Reassembler, want wire.ReassemblyStats) {
	t.Helper()
	if got := r.Stats(); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
}

func checkPending(t *testing.T, r *wire.Reassembler, wantMessages int) {
	t.Helper()
	if m, _ := r.Pending(); m != wantMessages {
		t.Errorf("Pending messages = %d, want %d", m, wantMessages)
	}
}

func TestReassembleOrders(t *testing.T) {
	// Pieces 1 to N in order, as every sender of this format sends them,
	// make the message; any other order loses it, counted once, and
	// never delivers a payload.
	payload := payloadOfLen(1<<20, 42)
	frames := fragments(t, "big", payload)
	count := len(frames)
	inOrder := make([]int, count)
	for i := range inOrder {
		inOrder[i] = i
	}
	r := wire.NewReassembler(wire.Limits{})
	got, err := feed(t, r, sender1, frames, inOrder)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("in order: Add = %d bytes, %v; want the %d-byte payload", len(got), err, len(payload))
	}
	checkPending(t, r, 0)
	checkStats(t, r, wire.ReassemblyStats{Completed: 1})

	reverse := slices.Clone(inOrder)
	slices.Reverse(reverse)
	shuffled := slices.Clone(inOrder)
	rand.New(rand.NewPCG(1, 2)).Shuffle(count, func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	lastFirst := append([]int{count - 1}, inOrder[:count-1]...)
	swapped := slices.Clone(inOrder)
	swapped[3], swapped[4] = swapped[4], swapped[3]
	orders := map[string][]int{"reverse": reverse, "shuffled": shuffled, "last first": lastFirst, "two swapped": swapped}
	for name, order := range orders {
		t.Run(name, func(t *testing.T) {
			r := wire.NewReassembler(wire.Limits{})
			for _, i := range order {
				if got, err := r.Add(sender1, frames[i], t0); got != nil || (err != nil && !errors.Is(err, wire.ErrIncomplete)) {
					t.Fatalf("piece %d: Add = %d bytes, %v", i+1, len(got), err)
				}
			}
			r.Expire(t0.Add(time.Hour))
			checkPending(t, r, 0)
			if st := r.Stats(); st.Completed != 0 || st.Dropped() != 1 {
				t.Errorf("Stats = %+v; want the message dropped, counted once", st)
			}
		})
	}
}

func TestReassembleExactMultiple(t *testing.T) {
	payload := payloadOfLen(2*wire.MTU, 5)
	frames := fragments(t, "t", payload)
	if len(frames) != 3 || len(frames[2].Payload) != 0 {
		t.Fatalf("want 3 fragments with an empty last piece, got %d", len(frames))
	}
	r := wire.NewReassembler(wire.Limits{})
	got, err := feed(t, r, sender1, frames, []int{0, 1, 2})
	if err != nil || !bytes.Equal(got, payload) {
		t.Errorf("Add = %d bytes, %v", len(got), err)
	}
}

func TestReassembleSingleFragment(t *testing.T) {
	// A payload under MTU whose 2-array with a long topic is over MTU goes
	// out as one fragment, N = 1.
	topic := strings.Repeat("t", 100)
	payload := payloadOfLen(wire.MTU-50, 9)
	if wire.Fits(topic, payload) {
		t.Fatal("test message should not fit one datagram")
	}
	frames := fragments(t, topic, payload)
	if len(frames) != 1 {
		t.Fatalf("got %d fragments, want 1", len(frames))
	}
	r := wire.NewReassembler(wire.Limits{})
	got, err := r.Add(sender1, frames[0], t0)
	if err != nil || !bytes.Equal(got, payload) {
		t.Errorf("Add = %d bytes, %v; want the payload", len(got), err)
	}
	checkPending(t, r, 0)
}

func TestReassembleShortPieces(t *testing.T) {
	// A sender with a smaller MTU: pieces shorter than ours, all of one
	// length but the last.
	payload := payloadOfLen(2500, 11)
	var frames []wire.Frame
	for i := 0; i < len(payload); i += 1000 {
		frames = append(frames, wire.Frame{Topic: []byte("t"), Payload: payload[i:min(i+1000, len(payload))]})
	}
	for i := range frames {
		frames[i].Index, frames[i].Count = i+1, len(frames)
	}
	r := wire.NewReassembler(wire.Limits{})
	got, err := feed(t, r, sender1, frames, []int{0, 1, 2})
	if err != nil || !bytes.Equal(got, payload) {
		t.Errorf("Add = % x, %v", got[:min(len(got), 8)], err)
	}
}

func TestReassembleDuplicate(t *testing.T) {
	payload := payloadOfLen(150000, 3)
	frames := fragments(t, "t", payload)
	r := wire.NewReassembler(wire.Limits{})
	if _, err := r.Add(sender1, frames[0], t0); err != nil {
		t.Fatal(err)
	}
	if got, err := r.Add(sender1, frames[0], t0); got != nil || !errors.Is(err, wire.ErrDuplicate) {
		t.Fatalf("identical duplicate: Add = %v, %v; want ErrDuplicate", got, err)
	}
	got, err := feed(t, r, sender1, frames, []int{1, 2})
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("after duplicate: Add = %d bytes, %v", len(got), err)
	}
	// The last piece again, once the message is out: a duplicate too,
	// and nothing more.
	if got, err := r.Add(sender1, frames[2], t0); got != nil || !errors.Is(err, wire.ErrDuplicate) {
		t.Fatalf("duplicate of a completed message's last piece: Add = %v, %v; want ErrDuplicate", got, err)
	}
	r.Expire(t0.Add(time.Hour))
	checkStats(t, r, wire.ReassemblyStats{Completed: 1, Duplicates: 2})
}

func TestReassembleSupersede(t *testing.T) {
	// Message A loses its last fragment; message B, same sender, topic and
	// N, follows. B's first piece differs from A's, so A is dropped and B
	// reassembles on its own.
	a := fragments(t, "t", payloadOfLen(150000, 1))
	bPayload := payloadOfLen(150000, 2)
	b := fragments(t, "t", bPayload)
	r := wire.NewReassembler(wire.Limits{})
	if _, err := feed(t, r, sender1, a, []int{0, 1}); err != nil {
		t.Fatal(err)
	}
	got, err := feed(t, r, sender1, b, []int{0, 1, 2})
	if err != nil || !bytes.Equal(got, bPayload) {
		t.Fatalf("Add = %d bytes, %v; want B", len(got), err)
	}
	checkPending(t, r, 0)
	checkStats(t, r, wire.ReassemblyStats{Completed: 1, Incomplete: 1})
}

func TestReassembleTwoSendersSameTopic(t *testing.T) {
	// The Python receiver keyed by sender IP, topic and N, so these two
	// publishers on one host would have mixed their pieces.
	p1, p2 := payloadOfLen(200000, 1), payloadOfLen(200000, 2)
	f1, f2 := fragments(t, "t", p1), fragments(t, "t", p2)
	r := wire.NewReassembler(wire.Limits{})
	var got1, got2 []byte
	for i := range f1 {
		out, err := r.Add(sender1, f1[i], t0)
		if err != nil {
			t.Fatalf("sender 1 piece %d: %v", i+1, err)
		}
		got1 = append(got1, out...) // copy: out is valid until the next Add
		out, err = r.Add(sender2, f2[i], t0)
		if err != nil {
			t.Fatalf("sender 2 piece %d: %v", i+1, err)
		}
		got2 = append(got2, out...)
	}
	if !bytes.Equal(got1, p1) || !bytes.Equal(got2, p2) {
		t.Errorf("interleaved senders did not both reassemble (%d, %d bytes)", len(got1), len(got2))
	}
	checkStats(t, r, wire.ReassemblyStats{Completed: 2})
}

func TestReassembleTopicsAndCountsKeyed(t *testing.T) {
	// Same sender, different topics (or different N) are different messages.
	pa, pb := payloadOfLen(130000, 1), payloadOfLen(130000, 2)
	fa, fb := fragments(t, "a", pa), fragments(t, "b", pb)
	r := wire.NewReassembler(wire.Limits{})
	for i := range 2 {
		if _, err := r.Add(sender1, fa[i], t0); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Add(sender1, fb[i], t0); err != nil {
			t.Fatal(err)
		}
	}
	checkPending(t, r, 2)
	if got, err := r.Add(sender1, fa[2], t0); err != nil || !bytes.Equal(got, pa) {
		t.Errorf("topic a: %d bytes, %v", len(got), err)
	}
	if got, err := r.Add(sender1, fb[2], t0); err != nil || !bytes.Equal(got, pb) {
		t.Errorf("topic b: %d bytes, %v", len(got), err)
	}
}

func TestReassembleTimeout(t *testing.T) {
	// Pieces that keep coming within the gap still run out of time.
	frames := fragments(t, "t", payloadOfLen(3*wire.MTU+10, 1))
	r := wire.NewReassembler(wire.Limits{Timeout: 5 * time.Second, Gap: 3 * time.Second})
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	for i, s := range []int{0, 2, 4} {
		if got, err := r.Add(sender1, frames[i], at(s)); got != nil || err != nil {
			t.Fatalf("piece %d: Add = %d bytes, %v; want stored", i+1, len(got), err)
		}
	}
	// At exactly the timeout the message is still held.
	if n := r.Expire(at(5)); n != 0 {
		t.Fatalf("Expire at the timeout = %d", n)
	}
	checkPending(t, r, 1)
	// Past it, the message is dropped; its last piece finds it gone.
	if got, err := r.Add(sender1, frames[3], at(5).Add(1)); got != nil || !errors.Is(err, wire.ErrIncomplete) {
		t.Fatalf("late piece: Add = %d bytes, %v; want ErrIncomplete", len(got), err)
	}
	checkPending(t, r, 0)
	if _, b := r.Pending(); b != 0 {
		t.Errorf("Pending bytes = %d after expiry, want 0", b)
	}
	// The late piece counts as a message of its own: the format cannot
	// tell it from the end of the next one.
	checkStats(t, r, wire.ReassemblyStats{Expired: 1, Incomplete: 1})
}

func TestReassembleGap(t *testing.T) {
	// Senders send a message's pieces back to back. After a pause longer
	// than the gap the rest of the message was lost, and what comes next
	// is the next message's, even if it has the number expected: the
	// message is dropped, never completed with it.
	a := fragments(t, "t", payloadOfLen(2*wire.MTU+10, 1))
	b := fragments(t, "t", payloadOfLen(2*wire.MTU+10, 2))
	gap := 20 * time.Millisecond
	r := wire.NewReassembler(wire.Limits{Gap: gap})
	if got, err := r.Add(sender1, a[0], t0); got != nil || err != nil {
		t.Fatalf("Add = %d bytes, %v", len(got), err)
	}
	// Within the gap the next piece joins; a moment past it, B's piece 3
	// (B lost pieces 1 and 2, A lost piece 3) does not.
	if got, err := r.Add(sender1, a[1], t0.Add(gap)); got != nil || err != nil {
		t.Fatalf("Add = %d bytes, %v", len(got), err)
	}
	if got, err := r.Add(sender1, b[2], t0.Add(2*gap+1)); got != nil || !errors.Is(err, wire.ErrIncomplete) {
		t.Fatalf("piece after the gap: Add = %d bytes, %v; want ErrIncomplete", len(got), err)
	}
	checkStats(t, r, wire.ReassemblyStats{Stalled: 1, Incomplete: 1})
	// Expire alone drops a stalled message too.
	if _, err := r.Add(sender1, a[0], t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if n := r.Expire(t0.Add(time.Second + gap + 1)); n != 1 {
		t.Errorf("Expire = %d, want 1", n)
	}
	checkPending(t, r, 0)
	checkStats(t, r, wire.ReassemblyStats{Stalled: 2, Incomplete: 1})
}

func TestReassembleLost(t *testing.T) {
	// A receiver that lost datagrams between two pieces of a message cannot
	// know they were not that message's end and the next one's start:
	// the message is dropped.
	a := fragments(t, "t", payloadOfLen(2*wire.MTU+10, 1))
	b := fragments(t, "t", payloadOfLen(2*wire.MTU+10, 2))
	r := wire.NewReassembler(wire.Limits{})
	r.Lost(7)
	if _, err := feed(t, r, sender1, a, []int{0, 1}); err != nil {
		t.Fatal(err)
	}
	r.Lost(9) // a[2] and b[0] lost by the receiver
	for i := range 2 {
		if got, err := r.Add(sender1, b[i+1], t0); got != nil || !errors.Is(err, wire.ErrIncomplete) {
			t.Fatalf("piece %d after a loss: Add = %d bytes, %v; want ErrIncomplete", i+2, len(got), err)
		}
	}
	// a and b are both counted: b's piece 2 is not a's.
	checkStats(t, r, wire.ReassemblyStats{Overrun: 1, Incomplete: 1})
	// Losses before a message began do not matter.
	r.Lost(12)
	later := t0.Add(time.Second)
	pb := payloadOfLen(2*wire.MTU+10, 2)
	for i, f := range b {
		got, err := r.Add(sender1, f, later)
		if err != nil || (i == 2) != bytes.Equal(got, pb) {
			t.Fatalf("message after the losses, piece %d: %d bytes, %v", i+1, len(got), err)
		}
	}
}

func TestReassembleSplices(t *testing.T) {
	// Each case is the datagrams that arrive of two messages of one sender,
	// topic and N, of one length, pieces 1 to 4: a<n> and b<n>. None may
	// complete a payload cut from both. Sent back to back (tight), one
	// message's end and the next one's start lost together cannot be told
	// from a message (TestReassembleFaults bounds that case); sent more
	// than the gap apart, they can.
	tests := []struct {
		name    string
		tight   bool
		arrive  string
		done    string // what completes
		dropped uint64
	}{
		{"a's end and b's start lost", false, "a1 a2 b3 b4", "", 2},
		{"a's end lost, b whole", true, "a1 a2 b1 b2 b3 b4", "b", 1},
		{"a's piece repeated late", true, "a1 a2 a3 a2 a4 b1 b2 b3 b4", "b", 1},
		{"a's piece 1 late", false, "a2 a3 a4 a1 b1 b2 b3 b4", "b", 1},
		{"b's pieces swapped", true, "a1 a2 a3 a4 b1 b3 b2 b4", "a", 1},
		{"a's end and b's start lost, b's piece 3 repeated", false, "a1 a2 b3 b3 b4", "", 2},
		{"duplicates everywhere", true, "a1 a1 a2 a2 a3 a4 a4 b1 b1 b2 b3 b3 b4 b4", "a b", 0},
		// Reordered across messages, a message can be counted twice.
		{"a's last piece late, after b began", true, "a1 a2 a3 b1 a4 b2 b3 b4", "", 3},
	}
	payloads := map[string][]byte{"a": payloadOfLen(3*wire.MTU+10, 1), "b": payloadOfLen(3*wire.MTU+10, 2)}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := wire.NewReassembler(wire.Limits{Gap: 50 * time.Millisecond})
			var done []string
			for k, name := range strings.Fields(tc.arrive) {
				msg, n := name[:1], int(name[1]-'0')
				at := t0.Add(time.Duration(k) * time.Microsecond)
				if msg == "b" && !tc.tight {
					at = at.Add(100 * time.Millisecond)
				}
				got, _ := r.Add(sender1, fragments(t, "t", payloads[msg])[n-1], at)
				if got == nil {
					continue
				}
				switch {
				case bytes.Equal(got, payloads["a"]):
					done = append(done, "a")
				case bytes.Equal(got, payloads["b"]):
					done = append(done, "b")
				default:
					t.Fatalf("completed a payload that is neither a nor b, at %s", name)
				}
			}
			r.Expire(t0.Add(time.Hour))
			if got := strings.Join(done, " "); got != tc.done {
				t.Errorf("completed %q, want %q", got, tc.done)
			}
			if st := r.Stats(); st.Dropped() != tc.dropped {
				t.Errorf("dropped %d messages, want %d (%+v)", st.Dropped(), tc.dropped, st)
			}
		})
	}
}

func TestReassembleMaxPending(t *testing.T) {
	r := wire.NewReassembler(wire.Limits{MaxPending: 2})
	var msgs [3][]wire.Frame
	var payloads [3][]byte
	for i := range msgs {
		payloads[i] = payloadOfLen(100000, uint64(i))
		msgs[i] = fragments(t, string(rune('a'+i)), payloads[i])
		if _, err := r.Add(sender1, msgs[i][0], t0.Add(time.Duration(i)*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		checkPending(t, r, min(i+1, 2))
	}
	checkStats(t, r, wire.ReassemblyStats{Evicted: 1})
	// The oldest, a, was evicted: its second piece does not complete it.
	if got, err := r.Add(sender1, msgs[0][1], t0); got != nil || !errors.Is(err, wire.ErrIncomplete) {
		t.Errorf("evicted message completed: %d bytes, %v", len(got), err)
	}
	// Tracking a's end evicted b, the oldest then; c still completes.
	if got, err := r.Add(sender1, msgs[2][1], t0); err != nil || !bytes.Equal(got, payloads[2]) {
		t.Errorf("newest message: %d bytes, %v", len(got), err)
	}
	checkStats(t, r, wire.ReassemblyStats{Evicted: 2, Incomplete: 1, Completed: 1})
	// A message completed or dropped is remembered (to know its late
	// pieces) only until room is needed: it makes way before any
	// incomplete message.
	if _, err := r.Add(sender1, msgs[1][0], t0); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Add(sender1, msgs[2][0], t0); err != nil {
		t.Fatal(err)
	}
	checkPending(t, r, 2)
	checkStats(t, r, wire.ReassemblyStats{Evicted: 2, Incomplete: 1, Completed: 1})
}

func TestReassembleMaxPendingBytes(t *testing.T) {
	// Buffers grow with the bytes received: two messages holding two full
	// pieces each fit 5 MTU, a third message's second piece does not, so
	// the oldest message is evicted to make room. (The payloads are 2 MTU,
	// so the last pieces are empty and completing needs no more room.)
	lim := wire.Limits{MaxPendingBytes: 5 * wire.MTU, MaxMessageBytes: 3 * wire.MTU}
	r := wire.NewReassembler(lim)
	var msgs [3][]wire.Frame
	var payloads [3][]byte
	for i := range msgs {
		payloads[i] = payloadOfLen(2*wire.MTU, uint64(i))
		msgs[i] = fragments(t, string(rune('a'+i)), payloads[i])
	}
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	for i := range 2 {
		if _, err := feed(t, r, sender1, msgs[i], []int{0, 1, 1}); !errors.Is(err, wire.ErrDuplicate) {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if m, n := r.Pending(); m != 2 || n != 4*wire.MTU {
		t.Errorf("Pending = %d messages, %d bytes; want 2, %d", m, n, 4*wire.MTU)
	}
	if _, err := r.Add(sender1, msgs[2][0], at(1)); err != nil {
		t.Fatal(err)
	}
	checkStats(t, r, wire.ReassemblyStats{Duplicates: 2})
	if _, err := r.Add(sender1, msgs[2][1], at(2)); err != nil {
		t.Fatal(err)
	}
	m, n := r.Pending()
	if m != 2 || n != 4*wire.MTU {
		t.Errorf("Pending = %d messages, %d bytes; want 2, %d bytes", m, n, 4*wire.MTU)
	}
	checkStats(t, r, wire.ReassemblyStats{Duplicates: 2, Evicted: 1})
	// a is gone; b and c complete.
	if got, err := r.Add(sender1, msgs[0][2], at(3)); got != nil || !errors.Is(err, wire.ErrIncomplete) {
		t.Errorf("evicted message completed: %d bytes, %v", len(got), err)
	}
	for _, i := range []int{1, 2} {
		if got, err := r.Add(sender1, msgs[i][2], at(4)); err != nil || !bytes.Equal(got, payloads[i]) {
			t.Errorf("message %d: %d bytes, %v", i, len(got), err)
		}
	}
}

func TestReassembleHostile(t *testing.T) {
	topic := []byte("t")
	piece := func(n int) []byte { return make([]byte, n) }
	tests := []struct {
		name string
		f    wire.Frame
		want error
	}{
		{"whole message", wire.Frame{Topic: topic, Payload: []byte{1}}, wire.ErrNotFragment},
		{"N = 0 with n", wire.Frame{Topic: topic, Index: 1, Count: 0}, wire.ErrNotFragment},
		{"N negative", wire.Frame{Topic: topic, Index: 1, Count: -5}, wire.ErrFragmentCount},
		{"N = 2^31-1", wire.Frame{Topic: topic, Index: 1, Count: math.MaxInt32}, wire.ErrTooLarge},
		{"N = MaxInt", wire.Frame{Topic: topic, Index: 1, Count: math.MaxInt}, wire.ErrTooLarge},
		{"last of MaxInt pieces", wire.Frame{Topic: topic, Index: math.MaxInt, Count: math.MaxInt}, wire.ErrTooLarge},
		{"N just over the limit", wire.Frame{Topic: topic, Index: 1, Count: (64<<20)/wire.MTU + 2}, wire.ErrTooLarge},
		{"n = 0", wire.Frame{Topic: topic, Index: 0, Count: 3}, wire.ErrFragmentIndex},
		{"n negative", wire.Frame{Topic: topic, Index: -1, Count: 3}, wire.ErrFragmentIndex},
		{"n > N", wire.Frame{Topic: topic, Index: 4, Count: 3}, wire.ErrFragmentIndex},
		{"piece over MTU", wire.Frame{Topic: topic, Payload: piece(wire.MTU + 1), Index: 1, Count: 3}, wire.ErrPieceTooLong},
		{"last piece over the limit", wire.Frame{Topic: topic, Payload: piece(wire.MTU),
			Index: (64<<20)/wire.MTU + 1, Count: (64<<20)/wire.MTU + 1}, wire.ErrTooLarge},
	}
	r := wire.NewReassembler(wire.Limits{})
	for i, tc := range tests {
		got, err := r.Add(sender1, tc.f, t0)
		if got != nil || !errors.Is(err, tc.want) {
			t.Errorf("%s: Add = %v, %v; want %v", tc.name, got, err, tc.want)
		}
		checkPending(t, r, 0)
		if s := r.Stats(); s.Rejected != uint64(i+1) {
			t.Errorf("%s: Rejected = %d, want %d", tc.name, s.Rejected, i+1)
		}
	}
	// The largest N the default limit allows is accepted.
	maxN := (64<<20)/wire.MTU + 1
	if _, err := r.Add(sender1, wire.Frame{Topic: topic, Payload: piece(10), Index: 1, Count: maxN}, t0); err != nil {
		t.Errorf("N = %d: %v", maxN, err)
	}
	// A huge N is refused without allocating anything for it.
	huge := wire.Frame{Topic: topic, Payload: piece(10), Index: 1, Count: math.MaxInt32}
	if allocs := testing.AllocsPerRun(10, func() { _, _ = r.Add(sender1, huge, t0) }); allocs != 0 {
		t.Errorf("refusing N = 2^31-1 allocated %v times", allocs)
	}
}

func TestReassembleBadPayload(t *testing.T) {
	// The pieces join into a str32 that claims more bytes than there are.
	bad := payloadOfLen(100000, 1)
	bad[1] = 0xff
	frames := fragments(t, "t", bad)
	r := wire.NewReassembler(wire.Limits{})
	got, err := feed(t, r, sender1, frames, []int{0, 1})
	if got != nil || !errors.Is(err, wire.ErrPayload) || !errors.Is(err, wire.ErrMalformed) {
		t.Errorf("Add = %d bytes, %v; want ErrPayload", len(got), err)
	}
	// Two values where one is expected is refused too.
	two := append(payloadOfLen(wire.MTU, 2), 0x01)
	got, err = feed(t, r, sender1, fragments(t, "t", two), []int{0, 1})
	if got != nil || !errors.Is(err, wire.ErrPayload) {
		t.Errorf("trailing value: Add = %d bytes, %v; want ErrPayload", len(got), err)
	}
	// So is a message of one piece.
	one := payloadOfLen(wire.MTU-10, 3)
	one[1] = 0xff
	if got, err := r.Add(sender1, wire.Frame{Topic: []byte("t"), Payload: one, Index: 1, Count: 1}, t0); got != nil || !errors.Is(err, wire.ErrPayload) {
		t.Errorf("one piece: Add = %d bytes, %v; want ErrPayload", len(got), err)
	}
	checkPending(t, r, 0)
	checkStats(t, r, wire.ReassemblyStats{Invalid: 3})
}

func TestReassembleSteadyStateAllocs(t *testing.T) {
	for _, size := range []int{100000, 1 << 20, 4 << 20} {
		payload := payloadOfLen(size, 1)
		frames := fragments(t, "t", payload)
		inOrder := make([]int, len(frames))
		for i := range inOrder {
			inOrder[i] = i
		}
		// A message that lost a piece, then one whole: dropping one
		// allocates nothing either.
		lossy := append(slices.Delete(slices.Clone(inOrder), 1, 2), inOrder...)
		for name, order := range map[string][]int{"in order": inOrder, "after a loss": lossy} {
			r := wire.NewReassembler(wire.Limits{})
			var got []byte
			run := func() {
				for _, i := range order {
					got, _ = r.Add(sender1, frames[i], t0)
				}
			}
			run() // warm the buffers
			if allocs := testing.AllocsPerRun(10, run); allocs != 0 {
				t.Errorf("%d-byte message %s: %v allocs per message once warm, want 0", size, name, allocs)
			}
			if !bytes.Equal(got, payload) {
				t.Errorf("%d-byte message %s: wrong payload after reuse", size, name)
			}
		}
	}
}

func TestReassembleStatsConcurrent(t *testing.T) {
	frames := fragments(t, "t", payloadOfLen(200000, 1))
	r := wire.NewReassembler(wire.Limits{})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				_ = r.Stats()
			}
		}
	})
	for range 50 {
		for _, f := range frames {
			_, _ = r.Add(sender1, f, t0)
		}
	}
	close(stop)
	wg.Wait()
	checkStats(t, r, wire.ReassemblyStats{Completed: 50})
}

// maxCount is the largest N that limits l accept.
func maxCount(l wire.Limits) int {
	d := wire.DefaultLimits()
	if l.MaxMessageBytes <= 0 {
		l.MaxMessageBytes = d.MaxMessageBytes
	}
	if l.MaxPendingBytes <= 0 {
		l.MaxPendingBytes = d.MaxPendingBytes
	}
	return min(l.MaxMessageBytes, l.MaxPendingBytes)/wire.MTU + 1
}

// totalAlloc returns the bytes allocated on the heap so far.
func totalAlloc() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

func TestReassembleFirstFragmentAllocatesPiece(t *testing.T) {
	// One datagram of a few bytes claiming the largest N used to reserve
	// 64 MiB. Memory now grows with the piece bytes received.
	maxN := maxCount(wire.Limits{})
	tests := []struct {
		name    string
		n, size int
	}{
		{"1-byte piece", 1, 1},
		{"full piece", 1, wire.MTU},
		{"n = N, 1-byte piece", maxN, 1},
		{"n = N, longest last piece", maxN, 64<<20 - (maxN-1)*wire.MTU},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := wire.Frame{Topic: []byte("t"), Payload: make([]byte, tc.size), Index: tc.n, Count: maxN}
			const runs = 20
			rs := make([]*wire.Reassembler, runs)
			for i := range rs {
				rs[i] = wire.NewReassembler(wire.Limits{})
			}
			// A piece 1 is stored; any other is of a message that lost its
			// start, and is dropped.
			stored, want := tc.size, error(nil)
			if tc.n > 1 {
				stored, want = 0, wire.ErrIncomplete
			}
			before := totalAlloc()
			for _, r := range rs {
				if got, err := r.Add(sender1, f, t0); got != nil || err != want {
					t.Fatalf("Add = %d bytes, %v; want %v", len(got), err, want)
				}
			}
			perAdd := (totalAlloc() - before) / runs
			// The piece's bytes, rounded up to a size class, plus a few
			// small slices of metadata.
			if limit := uint64(stored)*9/8 + 2048; perAdd > limit {
				t.Errorf("first fragment allocated %d bytes, want at most %d", perAdd, limit)
			}
			if m, b := rs[0].Pending(); m != min(stored, 1) || b != stored {
				t.Errorf("Pending = %d messages, %d bytes; want %d, %d", m, b, min(stored, 1), stored)
			}
			allocs := testing.AllocsPerRun(runs, func() {
				_, _ = wire.NewReassembler(wire.Limits{}).Add(sender1, f, t0)
			})
			if allocs > 10 {
				t.Errorf("first fragment on a new Reassembler: %v allocs, want a few small ones", allocs)
			}
		})
	}
}

func TestReassembleHostileFlood(t *testing.T) {
	// First fragments claiming the largest N, each from another sender,
	// never complete. What is held stays within the limits and grows with
	// the bytes received; once warm, the flood does not allocate.
	tests := []struct {
		name string
		lim  wire.Limits
		size int
	}{
		{"default limits, 1-byte pieces", wire.Limits{}, 1},
		{"default limits, full pieces", wire.Limits{}, wire.MTU},
		{"1 MiB for 2000 messages, 1-byte pieces", wire.Limits{MaxPending: 2000, MaxPendingBytes: 1 << 20}, 1},
		{"1 MiB for 2000 messages, full pieces", wire.Limits{MaxPending: 2000, MaxPendingBytes: 1 << 20}, wire.MTU},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lim := tc.lim
			d := wire.DefaultLimits()
			lim.MaxPending = cmp.Or(lim.MaxPending, d.MaxPending)
			lim.MaxPendingBytes = cmp.Or(lim.MaxPendingBytes, d.MaxPendingBytes)
			maxN := maxCount(lim)
			piece := bytes.Repeat([]byte{0xc0}, tc.size)
			r := wire.NewReassembler(lim)
			k := 0
			hostile := func() {
				k++
				src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(k >> 16), byte(k >> 8), byte(k)}), 9)
				n := 1 + k%maxN
				if (n-1)*wire.MTU+len(piece) > min(lim.MaxPendingBytes, 64<<20) {
					n = 1 // a full last piece would be over the limit
				}
				f := wire.Frame{Topic: []byte("t"), Payload: piece, Index: n, Count: maxN}
				if got, err := r.Add(src, f, t0); got != nil || (err != nil && err != wire.ErrIncomplete) {
					t.Fatalf("Add = %d bytes, %v; want stored, or dropped as incomplete", len(got), err)
				}
			}

			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			const floods = 10000
			for range floods {
				hostile()
				if m, b := r.Pending(); m > lim.MaxPending || b > lim.MaxPendingBytes || b > m*tc.size {
					t.Fatalf("Pending = %d messages, %d bytes; over the limits or the bytes received", m, b)
				}
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			// Buffers for what is held, up to twice the bytes received,
			// plus metadata: the topic copy, the piece table and the
			// 18-bit bitmap, well under 1 KiB a message.
			held := min(lim.MaxPending*tc.size, lim.MaxPendingBytes)
			limit := 2*held + lim.MaxPending*1024 + 1<<20
			allocated := after.TotalAlloc - before.TotalAlloc
			if allocated > uint64(limit) {
				t.Errorf("%d hostile fragments allocated %d bytes, want at most %d", floods, allocated, limit)
			}
			if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > int64(limit) {
				t.Errorf("%d hostile fragments grew the heap by %d bytes, want at most %d", floods, grown, limit)
			}
			if allocs := testing.AllocsPerRun(100, hostile); allocs != 0 {
				t.Errorf("hostile fragment once warm: %v allocs, want 0", allocs)
			}
			runtime.KeepAlive(r)
		})
	}
}

func TestReassembleMixedPieces(t *testing.T) {
	// Senders of this format cut every piece but the last to one length.
	// A message whose pieces differ is dropped, at the first piece that
	// shows it.
	for _, tc := range []struct {
		name string
		lens []int
		bad  int // the piece refused
	}{
		{"a middle piece short", []int{700, 700, 300, 700}, 3},
		{"the last piece longer than the first", []int{700, 700, 701}, 3},
		{"a middle piece long", []int{700, 800, 700}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := wire.NewReassembler(wire.Limits{})
			for i, l := range tc.lens {
				f := wire.Frame{Topic: []byte("t"), Payload: make([]byte, l), Index: i + 1, Count: len(tc.lens)}
				got, err := r.Add(sender1, f, t0)
				want := error(nil)
				switch {
				case i+1 == tc.bad:
					want = wire.ErrPieceSize
				case i+1 > tc.bad:
					want = wire.ErrIncomplete
				}
				if got != nil || err != want {
					t.Fatalf("piece %d: Add = %d bytes, %v; want %v", i+1, len(got), err, want)
				}
			}
			checkPending(t, r, 0)
			checkStats(t, r, wire.ReassemblyStats{Invalid: 1})
		})
	}
}

func TestReassemblePendingBytesReceived(t *testing.T) {
	// Pending counts the bytes received.
	payload := payloadOfLen(5*wire.MTU+123, 6)
	frames := fragments(t, "t", payload)
	r := wire.NewReassembler(wire.Limits{})
	received := 0
	for k, i := range []int{0, 1, 2, 3, 4} {
		if got, err := r.Add(sender1, frames[i], t0); got != nil || err != nil {
			t.Fatalf("piece %d: Add = %d bytes, %v", i+1, len(got), err)
		}
		received += len(frames[i].Payload)
		if m, b := r.Pending(); m != 1 || b != received {
			t.Errorf("after %d pieces: Pending = %d messages, %d bytes; want 1, %d", k+1, m, b, received)
		}
	}
	if got, err := r.Add(sender1, frames[5], t0); err != nil || !bytes.Equal(got, payload) {
		t.Errorf("last piece: Add = %d bytes, %v", len(got), err)
	}
	if m, b := r.Pending(); m != 0 || b != 0 {
		t.Errorf("Pending = %d messages, %d bytes after completion", m, b)
	}
}

func TestReassembleHugeSpareDropped(t *testing.T) {
	// The buffer of a message as large as the limit allows is kept for
	// reuse, but it counts against MaxPendingBytes: small messages that
	// need the room get it without evicting one another.
	lim := wire.Limits{MaxPendingBytes: 40 * wire.MTU}
	r := wire.NewReassembler(lim)
	big := payloadOfLen(39*wire.MTU, 1)
	if got, err := feed(t, r, sender1, fragments(t, "big", big), slices.Collect(func(yield func(int) bool) {
		for i := range 40 {
			if !yield(i) {
				return
			}
		}
	})); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("big message: %d bytes, %v", len(got), err)
	}
	for i := range 15 {
		small := fragments(t, "small", payloadOfLen(2*wire.MTU+10, uint64(i)))
		src := netip.AddrPortFrom(sender1.Addr(), uint16(i+1))
		if _, err := feed(t, r, src, small, []int{0, 1, 1}); !errors.Is(err, wire.ErrDuplicate) {
			t.Fatalf("small message %d: %v", i, err)
		}
	}
	if m, b := r.Pending(); m != 15 || b != 30*wire.MTU {
		t.Errorf("Pending = %d messages, %d bytes; want 15, %d", m, b, 30*wire.MTU)
	}
	checkStats(t, r, wire.ReassemblyStats{Completed: 1, Duplicates: 15})
}

func TestReassembleStallThenBackToBack(t *testing.T) {
	// A sender pauses longer than the gap inside message a, then sends b,
	// c and d back to back. a is lost (counted twice: its start stalled,
	// its end came without a start); the messages after it are not.
	const gap = 50 * time.Millisecond
	r := wire.NewReassembler(wire.Limits{Gap: gap})
	at := t0
	var want [][]byte
	for m := range 4 {
		p := payloadOfLen(3*wire.MTU+10, uint64(m))
		if m > 0 {
			want = append(want, p)
		}
		for i, f := range fragments(t, "t", p) {
			at = at.Add(time.Millisecond)
			if m == 0 && i == 1 {
				at = at.Add(gap + time.Millisecond)
			}
			got, _ := r.Add(sender1, f, at)
			if got != nil {
				if len(want) == 0 || !bytes.Equal(got, want[0]) {
					t.Fatalf("message %d, piece %d: completed a payload that is not the next one", m, i+1)
				}
				want = want[1:]
			}
		}
	}
	if len(want) != 0 {
		t.Errorf("%d of the messages after the pause did not complete (%+v)", len(want), r.Stats())
	}
	r.Expire(at.Add(time.Hour))
	checkStats(t, r, wire.ReassemblyStats{Completed: 3, Stalled: 1, Incomplete: 1})
}

func TestReassembleHugeLimits(t *testing.T) {
	// Limits past 512 MiB are lowered to it: larger ones would overflow
	// sizes on 32-bit targets, and let one datagram claim a bitmap of
	// terabytes.
	r := wire.NewReassembler(wire.Limits{MaxMessageBytes: math.MaxInt, MaxPendingBytes: math.MaxInt})
	if l := r.Limits(); l.MaxPendingBytes != 512<<20 || l.MaxMessageBytes != 512<<20 {
		t.Errorf("Limits = %+v; want both at 512 MiB", l)
	}
	maxN := (512<<20)/wire.MTU + 1
	f := wire.Frame{Topic: []byte("t"), Payload: make([]byte, wire.MTU), Index: 1, Count: maxN + 1}
	if _, err := r.Add(sender1, f, t0); !errors.Is(err, wire.ErrTooLarge) {
		t.Errorf("N = %d: %v, want ErrTooLarge", maxN+1, err)
	}
	payload := payloadOfLen(3*wire.MTU+5, 1)
	if got, err := feed(t, r, sender1, fragments(t, "t", payload), []int{0, 1, 2, 3}); err != nil || !bytes.Equal(got, payload) {
		t.Errorf("a message under huge limits: %d bytes, %v", len(got), err)
	}
}

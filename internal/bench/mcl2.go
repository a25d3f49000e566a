package bench

import (
	"context"
	"fmt"
	"runtime"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/internal/sock"
	"github.com/mcl-go/mcl/wire"
	"github.com/mcl-go/mcl/wire/mcl2"
)

// mcl/2's rows. mcl publishes with mcl.WithFraming(mcl.FramingMCL2): a
// Publisher that batches small messages into datagrams of the path's size
// (or mcl.DatagramSize's), and cuts large ones into pieces that fill
// datagrams of that size. The rows are measured as the seed framing's
// are (the same window, turns, counters and loss marks), against a
// baseline that sends the same bytes in the same datagrams:
//
//   - Batched messages: datagrams of exactly the size of mcl's full
//     ones, each holding as many messages as mcl's does (mcl/2's 24-byte
//     header and each record's 12 bytes of prefix and topic go out as
//     zero bytes), every one full, copied message by message into the
//     datagram and sent with sendmmsg, 64 KB of datagrams a call (one of
//     65460 bytes, or 47 of 1392: what 861 and 18 messages of 64 bytes
//     fill of 65487 and 1452), and what is left when the window fills or
//     the turn ends. Its subscribers count the messages a datagram holds
//     from its length. This is the least the kernel can do for mcl's
//     bytes: mcl sends no fewer datagrams, and no fewer bytes.
//     Its subscribers count with a clock read a datagram; mcl's, in these
//     rows, take the time of a message from Message.Received (see
//     counter.at).
//   - Fragmented messages: the datagrams mcl/2 sends for a message, piece
//     for piece (mcl2.Cut and mcl2.Piece, with the header and fragment
//     header's bytes), numbered so that a subscriber counts a message only
//     once all of them came in order (see wholes), sent as mcl/2's
//     Publisher sends them: the headers and the pieces where they lie,
//     one run of datagrams with UDP GSO (sock.Sender.WriteSegments). Its
//     subscribers, as mcl's, take runs the kernel coalesced (GRO).
//
// Latency rows time mcl/2's round trips, batched and Express, and the seed
// framing's and the baseline's, the four pingers taking turns; each mcl/2
// row carries the seed's round trips of the same turns (Row.Seed).

// The framings Config.Framing selects, and a Variant's.
const (
	FramingSeed = "seed" // mcl's default framing (mcl.FramingSeed)
	FramingMCL2 = "mcl2" // mcl.FramingMCL2
	FramingBoth = "both" // Config.Framing only: the rows of both
)

// MCL2Rows says what the mcl/2 rows measure.
type MCL2Rows struct {
	Sizes []int // payload sizes of throughput rows
	// DatagramSizes are the datagram sizes (mcl.DatagramSize) each
	// throughput row is measured with; 0 is the path's (the Publisher's
	// default: the interface's MTU less the IP and UDP headers, 65487
	// bytes on the sandbox's veth).
	DatagramSizes []int
	Fanouts       []int // subscriber counts of throughput rows
	// LatencySizes are payload sizes of ping-pong rows: each makes a row
	// for mcl/2 batched and one for Express, with the seed framing's
	// round trips of the same turns.
	LatencySizes []int
}

// Variant is how mcl's side of a row publishes.
type Variant struct {
	Framing string `json:"framing"` // FramingSeed or FramingMCL2
	// DatagramSize is the mcl/2 Publisher's datagram size: in a Row,
	// the size it used; configured, 0 for the path's.
	DatagramSize int  `json:"datagram_size,omitempty"`
	Express      bool `json:"express,omitempty"` // mcl/2: each message in a datagram of its own, at once (mcl.Express)
}

// Label names v as the table does: "seed", "mcl2/65487" (datagram
// size, "mcl2" when not known), "mcl2 express". (Not String: Row embeds
// Variant, and would print as its label alone.)
func (v Variant) Label() string {
	s := v.Framing
	if s == "" {
		s = FramingSeed
	}
	if v.Framing == FramingMCL2 && v.DatagramSize > 0 {
		s += fmt.Sprintf("/%d", v.DatagramSize)
	}
	if v.Express {
		s += " express"
	}
	return s
}

// options are the Publisher's options for v.
func (v Variant) options() []mcl.PublishOption {
	if v.Framing != FramingMCL2 {
		return nil
	}
	opts := []mcl.PublishOption{mcl.WithFraming(mcl.FramingMCL2)}
	if v.DatagramSize > 0 {
		opts = append(opts, mcl.DatagramSize(v.DatagramSize))
	}
	if v.Express {
		opts = append(opts, mcl.Express())
	}
	return opts
}

// batched says that v's Publisher returns before it sends: Flush hands
// its messages to the kernel.
func (v Variant) batched() bool { return v.Framing == FramingMCL2 && !v.Express }

// datagramSize returns the size of the datagrams v's Publisher sends on
// c: v.DatagramSize, or else what the Publisher takes by default, the
// largest datagram the path carries unfragmented, within
// mcl.MinDatagramSize..mcl.MaxDatagramSize. Errors: those of opening a
// socket to ask.
func datagramSize(c *mcl.Connection, v Variant) (int, error) {
	if v.DatagramSize > 0 {
		return v.DatagramSize, nil
	}
	snd, err := sock.Dial(sockConfig(c))
	if err != nil {
		return 0, err
	}
	defer snd.Close()
	return min(max(snd.MaxDatagram(), mcl.MinDatagramSize), mcl.MaxDatagramSize), nil
}

// layout is how the baseline of a row lays its messages out in
// datagrams, the way mcl's side does, and so how its subscribers count
// them. It goes to a subscriber's child process in its task.
type layout struct {
	Size int `json:"size"` // payload bytes of a message
	// Pieces is how many datagrams a message takes, 1 or more: a message
	// of several is cut into pieces of Piece bytes, the last the rest,
	// each after Extra bytes of header (0 for the seed framing), and its
	// datagrams are numbered (see stamp).
	Pieces int `json:"pieces"`
	Piece  int `json:"piece,omitempty"`
	Extra  int `json:"extra,omitempty"`
	// Record, when not 0, says that datagrams hold several messages (mcl/2
	// batched): after Header bytes, PerDatagram records of Record bytes
	// each, the message at its end.
	Record      int `json:"record,omitempty"`
	Header      int `json:"header,omitempty"`
	PerDatagram int `json:"per_datagram,omitempty"`
}

// seedLayout is the seed framing's layout: a message whose frame exceeds
// wire.MTU bytes goes in pieces of wire.MTU bytes, one datagram each.
func seedLayout(size int) layout {
	return layout{Size: size, Pieces: max(1, (size+wire.MTU-1)/wire.MTU), Piece: wire.MTU}
}

// mcl2Layout is mcl/2's layout of messages of size bytes on benchTopic in
// datagrams of dgram bytes: several to a datagram if one fits, else cut
// into pieces as mcl2.Cut and mcl2.Piece say.
func mcl2Layout(size, dgram int) layout {
	record := mcl2.MessageOverhead + len(benchTopic) + size
	if mcl2.HeaderLen+record <= dgram {
		return layout{Size: size, Pieces: 1, Record: record, Header: mcl2.HeaderLen, PerDatagram: (dgram - mcl2.HeaderLen) / record}
	}
	extra := mcl2.HeaderLen + mcl2.FragmentOverhead + len(benchTopic)
	n := mcl2.Cut(size, dgram-extra)
	_, piece, _ := mcl2.Piece(size, n, 0)
	return layout{Size: size, Pieces: n, Piece: piece, Extra: extra}
}

// frames cuts a payload as l says, for a baseline whose messages are not
// batched: datagram i is heads[i] followed by bodies[i]. Without Extra
// (the seed framing), the heads are the payload's pieces, and bodies nil;
// with, each head is Extra bytes (zero, but for its number: see stamp),
// and the bodies are the pieces, where they lie in p, as mcl/2's
// Publisher sends them.
func (l layout) frames(p []byte) (heads, bodies [][]byte) {
	if l.Pieces <= 1 {
		return [][]byte{p}, nil
	}
	for off := 0; off < len(p); off += l.Piece {
		piece := p[off:min(off+l.Piece, len(p))]
		if l.Extra == 0 {
			heads = append(heads, piece)
			continue
		}
		heads = append(heads, make([]byte, l.Extra))
		bodies = append(bodies, piece)
	}
	return heads, bodies
}

// measureThroughput measures one throughput row of f with throughput, on
// two Connections from nextConn. An mcl/2 row says the datagram size its
// Publisher used, and its baseline sends datagrams of that size.
func measureThroughput(ctx context.Context, throughput throughputFunc, nextConn func() (*mcl.Connection, error), f flow, stopped func(error) error) (Row, error) {
	row := Row{Kind: "throughput", Size: f.size, Subscribers: f.subs, Variant: f.v}
	name := fmt.Sprintf("%s x%d", sizeName(f.size), f.subs)
	if f.v.Framing == FramingMCL2 {
		name += " " + f.v.Label()
	}
	c, err := nextConn()
	if err != nil {
		return row, err
	}
	bc, err := nextConn()
	if err != nil {
		return row, err
	}
	f.lay = seedLayout(f.size)
	if f.v.Framing == FramingMCL2 {
		if row.DatagramSize, err = datagramSize(bc, f.v); err != nil {
			return row, fmt.Errorf("throughput, %s: %w", name, err)
		}
		f.lay = mcl2Layout(f.size, row.DatagramSize)
	}
	if row.MCL, row.Baseline, err = throughput(ctx, c, bc, f); err != nil {
		return row, fmt.Errorf("throughput, %s: %w", name, stopped(err))
	}
	row.Ratio = throughputRatio(row.MCL, row.Baseline)
	return row, nil
}

// sendBytes is how many bytes of datagrams the batched baseline sends a
// system call: one datagram of 64 KB, or 47 of 1392 bytes.
const sendBytes = 64 << 10

// batchSender is the baseline of batched mcl/2 rows: it copies each
// message into the datagram it fills, as mcl's Publisher does, and sends
// the datagrams sendBytes at a time with sendmmsg. Its datagrams are
// full, and of the size of mcl's full ones, but the last of a drain.
type batchSender struct {
	snd  *sock.Sender
	lay  layout
	rec  []byte   // a message's record: zero bytes, then the payload
	bufs [][]byte // datagrams, each as long as a full one
	out  [][]byte // what a send sends: bufs[:full], the last maybe shorter
	full int      // datagrams filled
	fill int      // messages in bufs[full]
}

func newBatchSender(snd *sock.Sender, lay layout) *batchSender {
	b := &batchSender{snd: snd, lay: lay, rec: make([]byte, lay.Record)}
	copy(b.rec[lay.Record-lay.Size:], payload(lay.Size))
	dgram := lay.Header + lay.PerDatagram*lay.Record
	for range max(1, min(64, sendBytes/dgram)) {
		b.bufs = append(b.bufs, sock.Buffer(dgram)[:dgram])
	}
	return b
}

// publish copies a message into the datagram being filled, and sends the
// datagrams once sendBytes of them are full.
func (b *batchSender) publish() error {
	off := b.lay.Header + b.fill*b.lay.Record
	copy(b.bufs[b.full][off:off+b.lay.Record], b.rec)
	if b.fill++; b.fill < b.lay.PerDatagram {
		return nil
	}
	b.fill = 0
	if b.full++; b.full < len(b.bufs) {
		return nil
	}
	return b.drain()
}

// drain sends the datagrams filled and the one being filled, if it holds
// anything.
func (b *batchSender) drain() error {
	b.out = append(b.out[:0], b.bufs[:b.full]...)
	if b.fill > 0 {
		b.out = append(b.out, b.bufs[b.full][:b.lay.Header+b.fill*b.lay.Record])
	}
	b.full, b.fill = 0, 0
	if len(b.out) == 0 {
		return nil
	}
	return b.snd.WriteBatch(b.out)
}

// latencyVariants2 are mcl's pingers of an mcl/2 latency measurement, in
// the order of its rows: the seed framing (as Row.Seed), mcl/2 batched,
// mcl/2 Express.
var latencyVariants2 = []Variant{{Framing: FramingSeed}, {Framing: FramingMCL2}, {Framing: FramingMCL2, Express: true}}

// latencyRows2 measures mcl/2's latency rows of size bytes in this
// process: a pinger and an echo for each of latencyVariants2, and the
// baseline's, the four taking turns. conns are the ping and pong
// Connections of each, the baseline's last.
func latencyRows2(ctx context.Context, conns []*mcl.Connection, size, rounds int) ([]Row, error) {
	runtime.GC() // as latencyRow does
	var pingers []pinger
	for i, v := range latencyVariants2 {
		p, closeMCL, err := pingMCL(conns[2*i], conns[2*i+1], size, v)
		if err != nil {
			return nil, err
		}
		defer closeMCL()
		pingers = append(pingers, p)
	}
	n := len(latencyVariants2)
	bp, closeBase, err := pingBaseline(conns[2*n], conns[2*n+1], size)
	if err != nil {
		return nil, err
	}
	defer closeBase()
	rs, err := pingPong(ctx, rounds, append(pingers, bp)...)
	if err != nil {
		return nil, err
	}
	return rows2(rs, size), nil
}

// rows2 makes mcl/2's latency rows of the results of its pingers, in the
// order of latencyVariants2 then the baseline.
func rows2(rs []Result, size int) []Row {
	seed, base := rs[0], rs[len(rs)-1]
	var rows []Row
	for i, v := range latencyVariants2[1:] {
		m := rs[i+1]
		s := seed
		rows = append(rows, Row{
			Kind: "latency", Size: size, Subscribers: 1, Variant: v,
			MCL: m, Baseline: base, Seed: &s,
			Ratio:     ratio(float64(m.P50), float64(base.P50)),
			RatioP99:  ratio(float64(m.P99), float64(base.P99)),
			VsSeed:    ratio(float64(m.P50), float64(seed.P50)),
			VsSeedP99: ratio(float64(m.P99), float64(seed.P99)),
		})
	}
	return rows
}

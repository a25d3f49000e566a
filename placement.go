package mcl

import (
	"bytes"
	"net/netip"
	"time"

	"github.com/mcl-go/mcl/wire"
)

// Fragments read into place. A large message arrives as a run of
// fragments from one sender, piece after piece. Once its first piece is
// in, the feed knows where the next ones go in the reassembly buffer and
// how long their headers are, so it reads each datagram scattered: the
// header into a receive buffer, the piece straight into the reassembly
// buffer (reassembly.Reassembler.Ahead). That saves the copy of every piece,
// which was a third of the receiving CPU for 1 MB messages. Once a
// message is complete, the next datagram is most likely the first piece
// of the stream's next message, and is read into the buffer that message
// will take (reassembly.Reassembler.First). A datagram that turns out to be
// something else is put back together
// (sock.Message.Datagram) and handled as usual; after one from another
// sender or message the feed reads normally for a while, since the
// traffic is interleaved.

// placeCooldown is how many batches are read normally after a datagram of
// another sender or message arrived where a piece was expected. placeMin
// is the fewest fragments of messages read into place: the reads that do
// it return fewer datagrams, which a message of two (often a full piece
// and a small one) does not repay.
const (
	placeCooldown = 16
	placeMin      = 3
)

// stream is the fragmented message the feed read a piece of last.
type stream struct {
	on       bool // the last datagram handled was a fragment
	complete bool // and it completed its message
	src      netip.AddrPort
	topic    []byte // a copy
	count    int
	index    int // the last piece's number
	head     int // the length of its header
	first    int // the length of the header of piece 1 of its message; 0 if unseen
	size     int // the length of piece 1
	cooldown int // batches left to read normally
	expect   [batchSize]int
}

// plan lays d.ms out for the next read and returns how many datagrams to
// read: the pieces expected next of the stream, each read into place; one
// datagram after a stream's message completed, read into place as the
// first piece of its next message when the buffer for that is known, and
// which tells where the rest go before reading on; else a plain batch.
// The token is held.
func (d *demux) plan() int {
	st := &d.stream
	if !st.on || st.count < placeMin {
		return d.batch
	}
	if st.cooldown > 0 {
		st.cooldown--
		return d.batch
	}
	if st.complete {
		// Most likely the first piece of the stream's next message:
		// read it straight into the buffer that message will take.
		if into := d.reasm.First(st.src, st.topic, st.count, st.size); into != nil && st.first > 0 {
			m := &d.ms[0]
			m.Head, m.Body, st.expect[0] = st.first, into, 1
		}
		return 1
	}
	k := 0
	for ; k < len(d.ms); k++ {
		n, into := d.reasm.Ahead(st.src, st.topic, st.count, k+1)
		if into == nil {
			break
		}
		m := &d.ms[k]
		m.Head = st.head - wire.IndexLen(st.index) + wire.IndexLen(n)
		m.Body = into
		st.expect[k] = n
	}
	if k == 0 {
		return d.batch
	}
	return k
}

// unplan puts the datagrams read into d.ms[:n] that are not the expected
// pieces back together in their Buf, with every one after the first of
// them (handling that one may write where the later pieces lie). It
// reports how many datagrams from the start are pieces in place. The token
// is held.
func (d *demux) unplan(n int) int {
	good := 0
	for good < n && d.ms[good].Body != nil && d.inPlace(good) {
		good++
	}
	for i := good; i < n; i++ {
		d.ms[i].Datagram()
	}
	return good
}

// inPlace reports whether datagram i is the piece expected of it: a
// header of exactly the length laid out, of the stream's message and piece,
// and a piece that fits Body. A datagram of another sender or message
// starts the cooldown.
func (d *demux) inPlace(i int) bool {
	st, m := &d.stream, &d.ms[i]
	if m.N < m.Head || m.Segment > 0 { // coalesced datagrams: see handle
		return false
	}
	h, err := wire.DecodeFragmentHeader(m.Buf[:m.Head])
	if m.Addr != st.src || err != nil || h.Count != st.count || !bytes.Equal(h.Topic, st.topic) {
		st.cooldown = placeCooldown
		return false
	}
	return h.Len == m.Head && h.Index == st.expect[i] && h.PieceLen == m.N-m.Head && h.PieceLen <= len(m.Body)
}

// handlePlaced handles datagram i, a piece read into place. The token is
// held.
func (d *demux) handlePlaced(members []*Subscriber, i int, now time.Time) {
	m, st := &d.ms[i], &d.stream
	d.stats.placed.Add(1)
	d.stats.datagrams.Add(1)
	d.stats.bytes.Add(uint64(m.N))
	takers := d.takersOf(members, st.topic)
	if len(takers) == 0 {
		return
	}
	fr := wire.Frame{Topic: st.topic, Payload: m.Body[:m.N-m.Head], Index: st.expect[i], Count: st.count}
	if fr.Index == 1 {
		d.stats.placedFirst.Add(1)
	}
	d.fragment(takers, fr, m.Head, m.Addr, now)
}

// follow records fragment fr, whose header was head bytes long, as the
// stream's latest; complete says it completed its message. The token is held.
func (d *demux) follow(fr wire.Frame, head int, from netip.AddrPort, complete bool) {
	st := &d.stream
	if !st.on || st.src != from || st.count != fr.Count || !bytes.Equal(st.topic, fr.Topic) {
		st.src, st.count = from, fr.Count
		st.topic = append(st.topic[:0], fr.Topic...)
		st.first = 0
	}
	st.on, st.complete, st.index, st.head = true, complete, fr.Index, head
	if fr.Index == 1 {
		st.first, st.size = head, len(fr.Payload)
	}
}

package mcl

import (
	"errors"
	"net/netip"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/mcl-go/mcl/internal/reassembly"
	"github.com/mcl-go/mcl/internal/senders"
	"github.com/mcl-go/mcl/wire/mcl2"
)

// handle2 handles an mcl/2 datagram (docs/mcl2.md) from from: the
// sender's sequence number first, so that duplicates go no further, then
// each record in turn. Payloads are copied to the queues, so the receive
// buffer stays the demux's.
func (d *demux) handle2(members []*Subscriber, b []byte, from netip.AddrPort, now time.Time) {
	h, records, err := mcl2.ParseHeader(b)
	if err != nil {
		if errors.Is(err, mcl2.ErrUnsupported) {
			d.stats.unsupported.Add(1)
		} else {
			d.stats.malformed.Add(1)
		}
		return
	}
	switch d.senders.Observe(h.Sender, h.Seq, from, now) {
	case senders.Duplicate, senders.Late:
		return
	}
	// The seed's pieces are read into place only while they come back to
	// back: an mcl/2 datagram between them breaks the run.
	d.stream.on = false
	for len(records) > 0 {
		r, rest, err := mcl2.Next(records)
		records = rest
		switch {
		case errors.Is(err, mcl2.ErrUnknownType):
			d.stats.unsupported.Add(1)
			continue
		case err != nil:
			d.stats.malformed.Add(1)
			continue // rest is nil if the records cannot be read on
		}
		takers := d.takersOf(members, r.Topic)
		if len(takers) == 0 {
			continue
		}
		if r.IsFragment() {
			d.piece(takers, h.Sender, &r, from, now)
			continue
		}
		if rest, err := msgp.Skip(r.Payload); err != nil || len(rest) != 0 {
			d.stats.malformed.Add(1)
			continue
		}
		t := d.intern(r.Topic)
		for _, s := range takers {
			if s.q.push(t, r.Payload, from, now) {
				d.gave(s)
			}
		}
	}
}

// piece joins a fragment of an mcl/2 message, and queues the message to
// takers if it completes it.
func (d *demux) piece(takers []*Subscriber, sender uint64, r *mcl2.Record, from netip.AddrPort, now time.Time) {
	d.stats.fragments.Add(1)
	d.fragments = true
	off, _, _ := mcl2.Piece(r.Size, r.Count, r.Index) // checked by mcl2.Next
	payload, _ := d.joiner.Add(reassembly.Piece{
		Sender: sender, Message: r.Message, Topic: r.Topic, Data: r.Payload,
		Offset: off, Index: r.Index, Count: r.Count, Size: r.Size,
	}, arrival(now, d.wall, d.stamp))
	if payload == nil {
		return // stored, or dropped and counted by the joiner
	}
	if !d.lendJoined(takers, d.intern(r.Topic), payload, from, now) {
		d.joiner.Recycle(payload)
	}
}

package mcl

import (
	"net/netip"
	"time"
)

// SubscriberStats counts what a Subscriber received and what became of it.
// Delivered, Filtered, Dropped and Panics are the Subscriber's own; the
// other counters are those of the socket it shares with the process's
// other Subscribers of the group (see Subscriber.Stats). For a Subscriber
// alone on its socket, every datagram read is counted once as filtered,
// malformed, a fragment, or a whole message; the reassembly counters say
// what became of fragments. A fragmented message is delivered exact or
// not at all: each one of which a fragment arrived is counted once, in
// Reassembled or in one of Incomplete, Stalled, Overrun, Evicted, Expired
// and Invalid (docs/wire.md says when the format cannot tell two messages
// apart). Duplicates of whole messages cannot be recognised in the seed
// format, and are delivered; in mcl/2 (docs/mcl2.md) every datagram has a
// sender id and a sequence number, duplicates are dropped, and Lost,
// Reordered, Repeated, Late and Jumps sum what Subscriber.Senders shows per
// sender.
type SubscriberStats struct {
	Datagrams   uint64 // datagrams read from the socket
	Bytes       uint64 // bytes in those datagrams
	Delivered   uint64 // messages handed to the callback, Next, or channel
	Filtered    uint64 // datagrams (mcl/2: messages) whose topic is not subscribed
	Malformed   uint64 // datagrams (mcl/2: records) that are not valid frames
	Fragments   uint64 // fragment datagrams of subscribed topics
	Reassembled uint64 // fragmented messages completed
	Duplicates  uint64 // fragments received twice, dropped
	Rejected    uint64 // fragments with impossible numbers or sizes
	Incomplete  uint64 // fragmented messages dropped: a piece missing, or out of order
	Stalled     uint64 // fragmented messages dropped: no piece for the reassembly gap (wire.Limits.Gap)
	Overrun     uint64 // fragmented messages dropped: the kernel dropped datagrams while they were assembled
	Evicted     uint64 // incomplete messages dropped to bound memory
	Expired     uint64 // incomplete messages dropped after the reassembly timeout
	Invalid     uint64 // fragmented messages dropped: their pieces do not make one msgpack value
	Dropped     uint64 // messages dropped because the queue was full (slow consumer)
	Panics      uint64 // callback panics recovered
	ReadErrors  uint64 // socket read errors other than Close
	KernelDrops uint64 // datagrams the kernel dropped, receive buffer full (Linux): a run of mcl/2 datagrams it had coalesced (GRO) counts once
	Unsupported uint64 // mcl/2 datagrams or records of another version, flag or type, dropped
	Senders     uint64 // mcl/2 senders tracked now
	Lost        uint64 // mcl/2 datagrams missing from their senders' sequences
	Reordered   uint64 // mcl/2 datagrams that came after a later one of their sender
	Repeated    uint64 // mcl/2 datagrams received before, dropped
	Late        uint64 // mcl/2 datagrams too far behind to tell new from repeated, dropped
	Jumps       uint64 // mcl/2 sequence numbers so far off that their sender's tracking restarted
}

// Counter is one named counter, for display.
type Counter struct {
	Name  string
	Value uint64
}

// Counters lists the counters with short lower-case names, in the order of
// the struct, as `mcl sub` prints them.
func (s SubscriberStats) Counters() []Counter {
	return []Counter{
		{"datagrams", s.Datagrams},
		{"bytes", s.Bytes},
		{"delivered", s.Delivered},
		{"filtered", s.Filtered},
		{"malformed", s.Malformed},
		{"fragments", s.Fragments},
		{"reassembled", s.Reassembled},
		{"duplicates", s.Duplicates},
		{"rejected", s.Rejected},
		{"incomplete", s.Incomplete},
		{"stalled", s.Stalled},
		{"overrun", s.Overrun},
		{"evicted", s.Evicted},
		{"expired", s.Expired},
		{"invalid", s.Invalid},
		{"dropped", s.Dropped},
		{"panics", s.Panics},
		{"read_errors", s.ReadErrors},
		{"kernel_drops", s.KernelDrops},
		{"unsupported", s.Unsupported},
		{"senders", s.Senders},
		{"lost", s.Lost},
		{"reordered", s.Reordered},
		{"repeated", s.Repeated},
		{"late", s.Late},
		{"jumps", s.Jumps},
	}
}

// Counters lists the counters with short lower-case names, as `mcl pub`
// prints them.
func (s PublisherStats) Counters() []Counter {
	return []Counter{
		{"messages", s.Messages},
		{"datagrams", s.Datagrams},
		{"bytes", s.Bytes},
		{"errors", s.Errors},
	}
}

// SenderStats is what a Subscriber's socket knows of one mcl/2 sender
// (docs/mcl2.md): a publisher, by the random id it drew when it opened.
type SenderStats struct {
	ID          uint64
	Addr        netip.AddrPort // where its last delivered datagram came from
	First, Last time.Time      // when its first and last datagram arrived
	Datagrams   uint64         // datagrams delivered
	Lost        uint64         // sequence numbers skipped and not (yet) arrived
	Reordered   uint64         // datagrams that came after a later one
	Repeated    uint64         // datagrams received before, dropped
	Late        uint64         // datagrams too far behind to tell, dropped
	Jumps       uint64         // times its tracking restarted at a number far off
}

package mcl

// SubscriberStats counts what a Subscriber received and what became of it.
// Delivered, Filtered, Dropped and Panics are the Subscriber's own; the
// other counters are those of the socket it shares with the process's
// other Subscribers of the group (see Subscriber.Stats). For a Subscriber
// alone on its socket, every datagram read is counted once as filtered,
// malformed, a fragment, or a whole message; the reassembly counters say
// what became of fragments.
type SubscriberStats struct {
	Datagrams   uint64 // datagrams read from the socket
	Bytes       uint64 // bytes in those datagrams
	Delivered   uint64 // messages handed to the callback, Next, or channel
	Filtered    uint64 // datagrams whose topic is not subscribed
	Malformed   uint64 // datagrams that are not valid frames
	Fragments   uint64 // fragment datagrams of subscribed topics
	Reassembled uint64 // fragmented messages completed
	Duplicates  uint64 // fragments received twice, dropped
	Rejected    uint64 // fragments with impossible numbers or sizes, and reassembled payloads that are not one msgpack value
	Evicted     uint64 // incomplete messages dropped to bound memory, or superseded
	Expired     uint64 // incomplete messages dropped after the reassembly timeout
	Dropped     uint64 // messages dropped because the queue was full (slow consumer)
	Panics      uint64 // callback panics recovered
	ReadErrors  uint64 // socket read errors other than Close
	KernelDrops uint64 // datagrams the kernel dropped: receive buffer full (Linux)
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
		{"evicted", s.Evicted},
		{"expired", s.Expired},
		{"dropped", s.Dropped},
		{"panics", s.Panics},
		{"read_errors", s.ReadErrors},
		{"kernel_drops", s.KernelDrops},
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

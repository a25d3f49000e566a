package bridge

import (
	"time"
)

// Stats counts what a Bridge forwarded and what it did not. Counters only
// grow; the JSON names are those of `mcl bridge --json`.
type Stats struct {
	ToNATS        uint64 `json:"to_nats"`         // group messages published on NATS (split ones once); with Stream, acknowledged by the stream
	ToNATSBytes   uint64 `json:"to_nats_bytes"`   // their payload bytes
	FromNATS      uint64 `json:"from_nats"`       // NATS messages republished on the group (joined ones once)
	FromNATSBytes uint64 `json:"from_nats_bytes"` // their payload bytes
	Split         uint64 `json:"split"`           // messages over the server's max_payload sent in parts
	Parts         uint64 `json:"parts"`           // parts sent
	Joined        uint64 `json:"joined"`          // messages joined again from parts
	Incomplete    uint64 `json:"incomplete"`      // split messages given up: a part missing after 10 s, or evicted to stay within BufferLimits

	// Dropped is the sum of the four below.
	Dropped         uint64        `json:"dropped"`
	DroppedQueue    uint64        `json:"dropped_queue"`    // group messages dropped: the queue to NATS was full (BufferLimits)
	DroppedNATS     uint64        `json:"dropped_nats"`     // group messages NATS refused: reconnect buffer full, connection closed, a subject over 4000 bytes; with Stream, not acknowledged
	DroppedSlow     uint64        `json:"dropped_slow"`     // NATS messages dropped by nats.go: the group side fell behind (slow consumer)
	DroppedGroup    uint64        `json:"dropped_group"`    // NATS messages the group's socket failed to send
	Invalid         uint64        `json:"invalid"`          // NATS messages not republished: no topic, bad parts, payload not one msgpack value
	Filtered        uint64        `json:"filtered"`         // NATS messages outside the topic patterns
	LoopsSuppressed uint64        `json:"loops_suppressed"` // messages not forwarded because a bridge of this group forwarded them already
	Standby         uint64        `json:"standby"`          // messages not forwarded because another bridge of the group was active when they came, or Run had not yet settled
	KernelDrops     uint64        `json:"kernel_drops"`     // group datagrams the kernel dropped (receive buffer full)
	Reconnects      uint64        `json:"reconnects"`       // reconnections to NATS
	Disconnects     uint64        `json:"disconnects"`      // losses of the NATS connection
	LastOutage      time.Duration `json:"last_outage_ns"`   // how long the last disconnection lasted

	Connected bool   `json:"connected"` // connected to a NATS server now
	Server    string `json:"server"`    // its URL
	Active    bool   `json:"active"`    // forwarding (see Bridge.Active)
	Peers     int    `json:"peers"`     // other bridges heard on the group
}

// Stats returns the bridge's counters.
func (b *Bridge) Stats() Stats {
	s := Stats{
		ToNATS:          b.c.toNATS.Load(),
		ToNATSBytes:     b.c.toNATSBytes.Load(),
		FromNATS:        b.c.fromNATS.Load(),
		FromNATSBytes:   b.c.fromNATSBytes.Load(),
		Split:           b.c.split.Load(),
		Parts:           b.c.partsToNATS.Load(),
		Joined:          b.c.joined.Load(),
		Incomplete:      b.c.incomplete.Load(),
		DroppedNATS:     b.c.dropNATS.Load(),
		DroppedGroup:    b.c.dropGroup.Load(),
		Invalid:         b.c.invalid.Load(),
		Filtered:        b.c.filtered.Load(),
		LoopsSuppressed: b.c.loops.Load(),
		Standby:         b.c.standby.Load(),
		Reconnects:      b.c.reconnects.Load(),
		Disconnects:     b.c.disconnects.Load(),
		Active:          b.active.Load(),
		Peers:           int(b.npeers.Load()),
	}
	if b.data != nil {
		ds := b.data.Stats()
		s.DroppedQueue = ds.Dropped
		s.KernelDrops = ds.KernelDrops
	}
	s.DroppedSlow = b.c.slowGone.Load()
	b.mu.Lock()
	for _, sub := range b.natsSubs {
		if n, err := sub.Dropped(); err == nil {
			s.DroppedSlow += uint64(n)
		}
	}
	s.LastOutage = b.outage
	b.mu.Unlock()
	s.Dropped = s.DroppedQueue + s.DroppedNATS + s.DroppedSlow + s.DroppedGroup
	if b.nc != nil && b.nc.IsConnected() {
		s.Connected = true
		s.Server = b.nc.ConnectedUrlRedacted()
	}
	return s
}

// Counter is one named counter, for display.
type Counter struct {
	Name  string
	Value uint64
}

// Counters lists the counters with short lower-case names, as `mcl
// bridge` prints them.
func (s Stats) Counters() []Counter {
	return []Counter{
		{"to_nats", s.ToNATS}, {"to_nats_bytes", s.ToNATSBytes},
		{"from_nats", s.FromNATS}, {"from_nats_bytes", s.FromNATSBytes},
		{"split", s.Split}, {"parts", s.Parts}, {"joined", s.Joined}, {"incomplete", s.Incomplete},
		{"dropped", s.Dropped}, {"dropped_queue", s.DroppedQueue}, {"dropped_nats", s.DroppedNATS},
		{"dropped_slow", s.DroppedSlow}, {"dropped_group", s.DroppedGroup},
		{"invalid", s.Invalid}, {"filtered", s.Filtered},
		{"loops_suppressed", s.LoopsSuppressed}, {"standby", s.Standby}, {"kernel_drops", s.KernelDrops},
		{"reconnects", s.Reconnects}, {"disconnects", s.Disconnects},
		{"last_outage_ms", uint64(s.LastOutage / time.Millisecond)},
	}
}

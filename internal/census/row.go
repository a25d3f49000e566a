package census

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"
)

// Loss is what became of the datagrams of mcl/2 senders (docs/mcl2.md),
// which number their datagrams: of one sender, or of a topic's, summed.
type Loss struct {
	Lost      uint64 `json:"lost"`
	Reordered uint64 `json:"reordered"`
	Repeated  uint64 `json:"repeated"`
}

// SendersLoss sums the loss of t's senders found in by (mcl/2 senders, by
// address), or returns nil when none of them is there. Loss is counted by
// sender, not by topic: a sender's loss shows in each of its topics.
func (t TopicStats) SendersLoss(by map[netip.AddrPort]Loss) *Loss {
	var sum *Loss
	for _, a := range t.SenderAddrs {
		if l, ok := by[a]; ok {
			if sum == nil {
				sum = new(Loss)
			}
			sum.Lost += l.Lost
			sum.Reordered += l.Reordered
			sum.Repeated += l.Repeated
		}
	}
	return sum
}

// Row is a topic's statistics as `mcl topics --json` and the spy page
// show them: durations in seconds, and the loss of its mcl/2 senders
// (null when it has none).
type Row struct {
	Topic       string  `json:"topic"`
	Messages    uint64  `json:"messages"`
	Rate        float64 `json:"rate_hz"`
	Bandwidth   float64 `json:"bytes_per_s"`
	MinPeriod   float64 `json:"min_period_s"`
	MaxPeriod   float64 `json:"max_period_s"`
	Jitter      float64 `json:"jitter_s"`
	SizeMin     int     `json:"size_min"`
	SizeMean    float64 `json:"size_mean"`
	SizeMax     int     `json:"size_max"`
	Senders     int     `json:"senders"`
	SendersMore bool    `json:"senders_more,omitempty"`
	MCL2        *Loss   `json:"mcl2"`
}

// Row returns t as a Row, with the loss of its senders found in by.
func (t TopicStats) Row(by map[netip.AddrPort]Loss) Row {
	return Row{
		Topic: t.Topic, Messages: t.Messages, Rate: t.Rate, Bandwidth: t.Bandwidth,
		MinPeriod: t.MinPeriod.Seconds(), MaxPeriod: t.MaxPeriod.Seconds(), Jitter: t.Jitter.Seconds(),
		SizeMin: t.SizeMin, SizeMean: t.SizeMean, SizeMax: t.SizeMax,
		Senders: t.Senders, SendersMore: t.SendersMore, MCL2: t.SendersLoss(by),
	}
}

// Sort orders ts by a column: "messages", "rate", "bandwidth", "size"
// (mean), "jitter", "senders" or "last" (the latest message), descending
// with desc; by name for "name" or another column, and for ties, always
// ascending, bytewise.
func Sort(ts []TopicStats, by string, desc bool) {
	key := func(s *TopicStats) float64 {
		switch by {
		case "messages":
			return float64(s.Messages)
		case "rate":
			return s.Rate
		case "bandwidth":
			return s.Bandwidth
		case "size":
			return s.SizeMean
		case "jitter":
			return float64(s.Jitter)
		case "senders":
			return float64(s.Senders)
		case "last":
			return float64(s.Last.UnixNano())
		}
		return 0
	}
	slices.SortFunc(ts, func(a, b TopicStats) int {
		c := cmp.Compare(key(&a), key(&b))
		if desc {
			c = -c
		}
		if c == 0 {
			c = strings.Compare(a.Topic, b.Topic)
		}
		return c
	})
}

// Package senders tracks the senders of mcl/2 datagrams: for each one, how
// many of its datagrams arrived, were lost, came out of order or twice, and
// which ones to drop as duplicates. It is pure: no sockets, no goroutines,
// and the time is passed in.
//
// Every mcl/2 datagram carries a 64-bit sender id, random per publisher (a
// restarted process is a new sender), and a 64-bit sequence number, which
// starts at 0 and grows by 1 per datagram of its sender. Give both to
// [Table.Observe], with where the datagram came from and when; the
// [Verdict] says whether to deliver it:
//
//	if !t.Observe(id, seq, from, now).Delivered() {
//		continue // a duplicate, or too late to tell: drop
//	}
//
// # Rules
//
// Each sender has a window of W = [Window] = 1024 sequence numbers ending
// at h, its highest sequence number so far, and remembers which numbers in
// the window arrived. The jump limit is J = [JumpLimit] = 65536. With
// d = int64(seq - h), computed with wrapping arithmetic so that numbers
// compare across the wrap from 2^64-1 to 0:
//
//   - The first datagram of a sender: Deliver; h = seq.
//   - 0 < d <= J: Deliver. Lost += d-1, for the numbers skipped; h = seq,
//     and the window slides forward, forgetting the numbers that leave it.
//   - -W < d <= 0: if seq arrived before, Duplicate: drop. Otherwise
//     Reordered: deliver, and Lost -= 1, since seq was counted lost when
//     it was skipped. A number below the sender's first (or below where
//     its tracking restarted) was never skipped, so it is Reordered but
//     leaves Lost as it is; Lost never goes below zero.
//   - -J <= d <= -W: Late: drop. seq has left the window, so whether it is
//     new or seen cannot be told. It stays counted lost if it was.
//   - d < -J or d > J: Jumped: deliver. Jumps += 1, and the sender's
//     tracking restarts at seq: h = seq, the window holds seq alone,
//     nothing is added to Lost. A forged or corrupt number far ahead thus
//     costs one Jump, not billions of Lost, and the genuine numbers that
//     follow, far behind it, resynchronise the same way. A restart forgets
//     which numbers arrived, so a copy of one from before it is delivered
//     again if it comes within the new window.
//
// Datagrams counts the datagrams delivered: Deliver, Reordered and Jumped.
// Every datagram, delivered or dropped, sets its sender's Last time, since
// it shows the sender is alive. Only delivered ones set Addr, so that a
// stray copy from another path (a relay, a second interface) does not move
// it.
//
// # Bounds
//
// A Table tracks at most maxSenders senders, in memory that does not grow
// past them. A datagram from a new sender when the table is full first
// evicts the quarter of the table (at least one sender) idle longest: the
// oldest Last, and among equal ones the lowest ID. It does so in one pass,
// so that even a flood of random sender ids costs O(1) per datagram,
// amortised. The counts of evicted senders stay in [Table.Totals]; a
// sender that comes back after eviction is tracked as a new one.
package senders

import (
	"cmp"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Window is W, the number of sequence numbers, ending at a sender's
// highest, within which duplicates are recognised.
const Window = 1024

// JumpLimit is J, the largest distance from a sender's highest sequence
// number that is taken as loss or reordering rather than a restart of its
// numbering.
const JumpLimit = 65536

// DefaultMaxSenders is the number of senders a Table tracks when New is
// given zero or less.
const DefaultMaxSenders = 1024

// Verdict says what to do with a datagram.
type Verdict uint8

const (
	Deliver   Verdict = iota // new: in order, after a gap, or the first of its sender
	Reordered                // new, but below the highest: it fills a gap it had left, or precedes the first: deliver
	Duplicate                // seen before: drop
	Late                     // too far behind to tell new from seen: drop
	Jumped                   // so far from the last that the sender's tracking restarted at it: deliver
)

// Delivered reports whether the datagram is to be delivered: true for
// Deliver, Reordered and Jumped.
func (v Verdict) Delivered() bool {
	return v == Deliver || v == Reordered || v == Jumped
}

// String returns the verdict's name in lower case, such as "duplicate".
func (v Verdict) String() string {
	switch v {
	case Deliver:
		return "deliver"
	case Reordered:
		return "reordered"
	case Duplicate:
		return "duplicate"
	case Late:
		return "late"
	case Jumped:
		return "jumped"
	}
	return "verdict(" + strconv.Itoa(int(v)) + ")"
}

// Counts counts what became of the datagrams of one sender, or of many.
type Counts struct {
	Datagrams  uint64 // delivered: Deliver, Reordered and Jumped
	Lost       uint64 // sequence numbers skipped and not (yet) arrived, Late ones included
	Reordered  uint64 // delivered after a higher number of the same sender
	Duplicates uint64 // dropped: seen before
	Late       uint64 // dropped: too far behind to tell new from seen
	Jumps      uint64 // restarts of tracking at a number too far from the highest
}

func (c *Counts) add(o Counts) {
	c.Datagrams += o.Datagrams
	c.Lost += o.Lost
	c.Reordered += o.Reordered
	c.Duplicates += o.Duplicates
	c.Late += o.Late
	c.Jumps += o.Jumps
}

// Sender is what a Table knows of one sender.
type Sender struct {
	ID          uint64
	Addr        netip.AddrPort // where its last delivered datagram came from
	First, Last time.Time      // when its first and last datagram, dropped or not, arrived
	Counts
}

// Totals sums the counts of every sender a Table has tracked, evicted ones
// included.
type Totals struct {
	Counts
	Senders int    // senders tracked now
	Evicted uint64 // senders evicted to make room for new ones
}

// entry is a tracked sender.
type entry struct {
	Sender
	high uint64 // h, the highest sequence number so far
	// span is how many numbers of the window, ending at high, tracking has
	// covered since it started: at most Window. A clear bit within it is a
	// number counted lost; one beyond it was never counted.
	span uint16
	// seen has bit n%Window set if number n, within the window, arrived.
	seen [Window / 64]uint64
}

// restart makes seq the only number tracked.
func (e *entry) restart(seq uint64) {
	e.seen = [Window / 64]uint64{}
	e.seen[seq%Window/64] = 1 << (seq % 64)
	e.high = seq
	e.span = 1
}

// observe applies the rules of the package doc to seq, except for the
// first datagram.
func (e *entry) observe(seq uint64) Verdict {
	d := int64(seq - e.high)
	switch {
	case d > 0 && d <= JumpLimit:
		e.slide(seq, uint64(d))
		e.Lost += uint64(d - 1)
		e.Datagrams++
		return Deliver
	case d <= 0 && d > -Window:
		w, b := seq%Window/64, uint64(1)<<(seq%64)
		if e.seen[w]&b != 0 {
			e.Duplicates++
			return Duplicate
		}
		e.seen[w] |= b
		// Each clear bit within span was counted in Lost when skipped, so
		// Lost > 0 here; testing it anyway keeps a bug from wrapping it
		// to 2^64-1.
		if uint64(-d) < uint64(e.span) && e.Lost > 0 {
			e.Lost--
		}
		e.Reordered++
		e.Datagrams++
		return Reordered
	case d < 0 && d >= -JumpLimit:
		e.Late++
		return Late
	}
	e.restart(seq)
	e.Jumps++
	e.Datagrams++
	return Jumped
}

// slide moves the window forward by d to end at seq: the bits of the
// numbers skipped are cleared, since they now stand for numbers that have
// not arrived, and seq's is set.
func (e *entry) slide(seq, d uint64) {
	if d >= Window {
		e.seen = [Window / 64]uint64{}
	} else {
		// Clear d-1 bits from high+1 on, a word at a time, so that a gap
		// costs at most Window/64+1 steps.
		for i, n := (e.high+1)%Window, d-1; n > 0; {
			off := i % 64
			k := min(64-off, n)
			e.seen[i/64] &^= (^uint64(0) >> (64 - k)) << off
			i = (i + k) % Window
			n -= k
		}
	}
	e.seen[seq%Window/64] |= 1 << (seq % 64)
	e.high = seq
	e.span = uint16(min(uint64(e.span)+d, Window))
}

// Table tracks senders by id. Create one with New.
//
// A Table is safe for concurrent use. It is meant to be fed by one receive
// goroutine, whose datagrams come in runs from one sender, while others
// take snapshots with Senders and Totals.
type Table struct {
	mu      sync.Mutex
	max     int
	byID    map[uint64]*entry
	list    []*entry // the entries of byID, in no particular order
	free    []*entry // evicted entries, kept for reuse; len(list)+len(free) <= max
	last    *entry   // the entry of the last Observe, since datagrams come in runs from one sender; nil after eviction
	gone    Counts   // the sums over evicted senders
	evicted uint64
}

// New returns an empty Table that tracks at most maxSenders senders, or
// DefaultMaxSenders if maxSenders <= 0.
func New(maxSenders int) *Table {
	if maxSenders <= 0 {
		maxSenders = DefaultMaxSenders
	}
	return &Table{max: maxSenders, byID: make(map[uint64]*entry)}
}

// Observe counts datagram number seq of sender id, received from address
// from at time now, and returns what to do with it, following the rules of
// the package doc. When the table is full, a new sender first evicts the
// quarter of the table idle longest.
//
// In steady state, a run of datagrams from one sender, Observe does not
// allocate and does no map lookup.
func (t *Table) Observe(id, seq uint64, from netip.AddrPort, now time.Time) Verdict {
	// No defer: nothing below panics, and Observe is the hot path.
	t.mu.Lock()
	e := t.last
	if e == nil || e.ID != id {
		e = t.byID[id]
		if e == nil {
			t.add(id, seq, from, now)
			t.mu.Unlock()
			return Deliver
		}
		t.last = e
	}
	e.Last = now
	v := e.observe(seq)
	// Compare first: the address rarely changes, and not storing it saves
	// writing a struct that holds a pointer.
	if v.Delivered() && e.Addr != from {
		e.Addr = from
	}
	t.mu.Unlock()
	return v
}

// add tracks a new sender, evicting first if the table is full.
func (t *Table) add(id, seq uint64, from netip.AddrPort, now time.Time) {
	if len(t.list) >= t.max {
		t.evict(max(t.max/4, 1))
	}
	var e *entry
	if n := len(t.free); n > 0 {
		e, t.free[n-1] = t.free[n-1], nil
		t.free = t.free[:n-1]
	} else {
		e = new(entry)
	}
	e.Sender = Sender{ID: id, Addr: from, First: now, Last: now, Counts: Counts{Datagrams: 1}}
	e.restart(seq)
	t.byID[id] = e
	t.list = append(t.list, e)
	t.last = e
}

// evict stops tracking the k senders idle longest, adding their counts to
// t.gone.
func (t *Table) evict(k int) {
	selectOldest(t.list, k)
	for i, e := range t.list[:k] {
		t.gone.add(e.Counts)
		delete(t.byID, e.ID)
		t.free = append(t.free, e)
		t.list[i] = nil
	}
	// Keep the survivors at the start of the array, so that list never
	// reallocates once it has reached max.
	n := copy(t.list, t.list[k:])
	clear(t.list[n:])
	t.list = t.list[:n]
	t.evicted += uint64(k)
	t.last = nil
}

// older orders entries by Last, then by ID: a total order, so that which
// senders are evicted does not depend on how the selection goes.
func older(a, b *entry) int {
	if c := a.Last.Compare(b.Last); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// selectOldest moves the k oldest entries of s (by older) to s[:k], in no
// particular order. It is a quickselect with random pivots, expected
// O(len(s)) whatever the order of s, which a flood of senders chooses.
func selectOldest(s []*entry, k int) {
	lo, hi := 0, len(s)
	for hi-lo > 1 {
		p := s[lo+rand.IntN(hi-lo)]
		// Partition s[lo:hi] into s[lo:lt] older than p, s[lt:gt] p
		// itself (the order is total), s[gt:hi] newer.
		lt, i, gt := lo, lo, hi
		for i < gt {
			switch c := older(s[i], p); {
			case c < 0:
				s[lt], s[i] = s[i], s[lt]
				lt++
				i++
			case c > 0:
				gt--
				s[i], s[gt] = s[gt], s[i]
			default:
				i++
			}
		}
		switch {
		case k < lt:
			hi = lt
		case k > gt:
			lo = gt
		default:
			return
		}
	}
}

// Senders appends to dst a snapshot of every sender tracked, sorted by ID,
// and returns the extended slice.
func (t *Table) Senders(dst []Sender) []Sender {
	n := len(dst)
	t.mu.Lock()
	dst = slices.Grow(dst, len(t.list))
	for _, e := range t.list {
		dst = append(dst, e.Sender)
	}
	t.mu.Unlock()
	slices.SortFunc(dst[n:], func(a, b Sender) int { return cmp.Compare(a.ID, b.ID) })
	return dst
}

// Totals returns the sums of the counts of every sender tracked so far,
// evicted ones included, with the number tracked now and the number
// evicted.
func (t *Table) Totals() Totals {
	t.mu.Lock()
	defer t.mu.Unlock()
	tot := Totals{Counts: t.gone, Senders: len(t.list), Evicted: t.evicted}
	for _, e := range t.list {
		tot.add(e.Counts)
	}
	return tot
}

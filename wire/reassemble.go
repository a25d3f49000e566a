package wire

import (
	"net/netip"
	"time"

	"github.com/mcl-go/mcl/internal/reassembly"
)

// Limits bounds what a Reassembler holds and how long it waits. A zero
// field takes its default.
type Limits struct {
	// MaxMessageBytes is the largest reassembled payload accepted (default
	// 64 MiB). A fragment is rejected with ErrTooLarge, before anything is
	// allocated for it, when its N could not fit (N > MaxMessageBytes/MTU+1)
	// or its piece n could not (it would end past MaxMessageBytes after n-1
	// pieces of MTU bytes). It is lowered to MaxPendingBytes if above it,
	// since such a message could never be held.
	MaxMessageBytes int
	// MaxPendingBytes bounds the buffer bytes held (default 64 MiB, at most
	// 512 MiB): the buffers of incomplete messages, which grow with the
	// piece bytes received (doubling, so up to twice those bytes, and never
	// past what the message can reach), and the buffers kept for reuse,
	// together.
	// Spare buffers are dropped, largest first, before an incomplete
	// message is evicted to make room. Besides these, each of at most
	// MaxPending records keeps a copy of a topic and a few words.
	MaxPendingBytes int
	// MaxPending is the most messages tracked at once (default 64): those
	// being assembled, and the ones just completed or dropped, remembered
	// for Gap so that their late pieces are recognised. Remembered ones
	// make way first.
	MaxPending int
	// Timeout drops an incomplete message this long after its first
	// fragment arrived (default 5s), however steadily its pieces come.
	Timeout time.Duration
	// Gap is the longest wait for the next piece of a message (default
	// 200ms). Senders of this format send a message's pieces back to back,
	// so a longer pause means the rest was lost, and a piece after it
	// belongs to a later message: the message is dropped (Stalled) rather
	// than completed with another's pieces. A sender that paces a message's
	// pieces further apart than Gap gets none of its messages through.
	Gap time.Duration
}

// DefaultLimits returns the limits used for zero fields: 64 MiB messages,
// 64 MiB pending, 64 tracked messages, 5 second timeout, 200 ms gap.
func DefaultLimits() Limits { return Limits(reassembly.DefaultLimits()) }

// ReassemblyStats counts what a Reassembler did with fragments. Every
// message of which at least one fragment arrived ends up counted once, in
// Completed or in one of the counters of dropped messages (Incomplete,
// Stalled, Overrun, Evicted, Expired, Invalid), except in the cases
// docs/wire.md lists, where the format cannot tell one message from two.
type ReassemblyStats struct {
	Completed  uint64 // messages reassembled and returned
	Duplicates uint64 // fragments dropped as a repeat of the piece received just before
	Incomplete uint64 // messages dropped because a piece is missing: a later piece, an earlier one, or another message's came next
	Stalled    uint64 // messages dropped because no piece came for Limits.Gap
	Overrun    uint64 // messages dropped because the receiver lost datagrams while they were being assembled (see Reassembler.Lost)
	Evicted    uint64 // incomplete messages dropped to make room (oldest first)
	Expired    uint64 // incomplete messages dropped after Limits.Timeout
	Invalid    uint64 // messages whose pieces all came but do not make one payload: pieces of unequal length, or not exactly one msgpack value
	Rejected   uint64 // fragments refused: bad n or N, too large, or a piece over MTU
}

// Dropped returns the number of messages dropped, for whatever reason:
// the sum of the counters of dropped messages.
func (s ReassemblyStats) Dropped() uint64 { return reassembly.Stats(s).Dropped() }

// Reassembler joins fragments back into payloads, exactly or not at all,
// within fixed memory bounds.
//
// The format has no message id: the pieces of a message are known only by
// sender address and port, topic and N (the Python receiver used the
// sender's IP only, so two publishers on one host with the same topic and
// N corrupted each other). What tells one message's pieces from the next
// one's is how senders of this format send: pieces 1 to N, in order, back
// to back, from one socket. So a Reassembler takes the pieces of a message
// only in that order, each within Limits.Gap of the one before and with no
// datagram lost by the receiver in between (see Lost). Any other piece
// means pieces are missing, and the message is dropped and counted: a
// piece after a gap in the numbers, an earlier piece again (a new message,
// or one delayed or duplicated on the way), a piece after a pause, or the
// same piece number with other bytes. The one repeat accepted, and dropped
// as a duplicate, is the piece just received, byte for byte. A piece that
// cannot start or continue a message (its message lost piece 1) is
// dropped, and its message counted once. A path that reorders the pieces
// of one message loses that message instead of delivering it. What the
// format still cannot tell from a message (the end of one and the start of
// the next lost together, less than Gap apart) is in docs/wire.md.
//
// Memory grows with the piece bytes received, never with the N a
// fragment claims. A message's buffer holds its pieces back to back, each
// copied in once on arrival, so the completed buffer is the payload. Buffers grow by doubling, never past what the message can
// reach, and are kept and reused, so in steady state Add does not
// allocate.
//
// Create one with NewReassembler. Add, Lost, Expire and Pending must not
// be called concurrently; Stats may be called from any goroutine at any
// time.
type Reassembler struct{ r *reassembly.Reassembler }

// NewReassembler returns a Reassembler bounded by l, with zero fields of l
// replaced by those of DefaultLimits.
func NewReassembler(l Limits) *Reassembler {
	return &Reassembler{reassembly.New(reassembly.Limits(l))}
}

// Limits returns the limits in force, defaults filled in.
func (r *Reassembler) Limits() Limits { return Limits(r.r.Limits()) }

// Lost tells the Reassembler how many datagrams the receiver has lost so
// far, counting from any start: on Linux, the SO_RXQ_OVFL counter that
// comes with each datagram (the socket's drops when it was queued). Call
// it before Add with the count the fragment came with. A message whose
// next piece comes with another count than its previous piece is dropped
// (Overrun): the datagrams lost between them may have been its missing
// pieces and the first ones of the sender's next message, whose remaining
// pieces would otherwise complete it.
func (r *Reassembler) Lost(count uint64) { r.r.Lost(count) }

// Add stores fragment f, sent from src and received at now (the
// datagram's arrival: Limits.Gap is measured between arrivals). First it
// drops the messages that can no longer complete (see Expire).
//
// When f completes a message Add returns its payload: the msgpack encoding
// of the whole payload, checked to be exactly one msgpack value. The
// payload is valid only until the next call to Add, which may reuse its
// buffer. A fragment with N = 1 is a whole payload in itself.
//
// Otherwise it returns nil and either nil (f is stored) or why f was
// not: ErrNotFragment (f is a whole message), ErrFragmentCount or
// ErrFragmentIndex (n or N out of range), ErrTooLarge (the message would
// exceed Limits.MaxMessageBytes), ErrPieceTooLong (piece over MTU),
// ErrDuplicate (a repeat of the piece received just before),
// ErrIncomplete (f's message is missing a piece: f is dropped, and the
// message counted once), ErrPieceSize (f's length does not fit the
// message's pieces: the message is dropped) or ErrPayload (f completed a
// message whose payload is not valid msgpack; the message is dropped).
//
// Storing f copies its piece into the message's buffer, which grows (or
// is swapped for a larger spare) as pieces arrive; when that would go
// over Limits.MaxPendingBytes, spare buffers are dropped and then the
// oldest other incomplete messages are evicted. A first fragment
// allocates about the length of its piece, whatever N it claims.
func (r *Reassembler) Add(src netip.AddrPort, f Frame, now time.Time) ([]byte, error) {
	return r.r.Add(src, reassembly.Frame(f), now)
}

// Expire drops the incomplete messages that can no longer complete by
// now: those whose latest piece came more than Limits.Gap before now
// (counted in Stalled), and those whose first piece came more than
// Limits.Timeout before now (Expired). It returns how many it dropped, and
// forgets messages completed or passed over more than Gap before now. Add
// calls it, so only a receiver that wants memory back while no fragments
// arrive needs to.
func (r *Reassembler) Expire(now time.Time) int { return r.r.Expire(now) }

// Pending returns the number of incomplete messages held and the piece
// bytes received for them (at most Limits.MaxPendingBytes).
func (r *Reassembler) Pending() (messages, bytes int) { return r.r.Pending() }

// Stats returns the counters. It is safe to call concurrently with Add.
func (r *Reassembler) Stats() ReassemblyStats { return ReassemblyStats(r.r.Stats()) }

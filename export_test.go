package mcl

// PlacedPieces reports how many fragment pieces s's socket read straight
// into their reassembly buffer.
func PlacedPieces(s *Subscriber) uint64 { return s.f.stats.placed.Load() }

// FirstPiecesPlaced reports how many of those were the first piece of
// their message.
func FirstPiecesPlaced(s *Subscriber) uint64 { return s.f.stats.placedFirst.Load() }

// BackupReads reports how many batches s's socket was read by its feed's
// backup goroutine rather than by a consumer.
func BackupReads(s *Subscriber) uint64 { return s.f.stats.backupReads.Load() }

// Parked reports whether the backup goroutine of s's feed is parked.
func Parked(s *Subscriber) bool { return s.f.parked.Load() }

// JoinerPending reports the mcl/2 messages being joined on s's socket, and
// the bytes reserved for them.
func JoinerPending(s *Subscriber) (messages, bytes int) { return s.f.dm.joiner.Pending() }

// SameFeed reports whether a and b read one socket.
func SameFeed(a, b *Subscriber) bool { return a.f == b.f }

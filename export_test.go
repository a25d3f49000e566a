package mcl

// PlacedPieces reports how many fragment pieces s's socket read straight
// into their reassembly buffer.
func PlacedPieces(s *Subscriber) uint64 { return s.f.stats.placed.Load() }

// FirstPiecesPlaced reports how many of those were the first piece of
// their message.
func FirstPiecesPlaced(s *Subscriber) uint64 { return s.f.stats.placedFirst.Load() }

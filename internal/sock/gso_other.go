//go:build !linux

package sock

// Without sendmmsg and GSO, WriteSegments copies each datagram together
// and sends it with its own write.
type segmenter struct {
	b   *batch
	max int    // MaxDatagram: what a 1500-byte MTU carries
	buf []byte // one datagram, copied together
}

func (g *segmenter) init(b *batch, cfg Config) {
	g.b, g.max = b, mtuPayload4
	if !cfg.Group.Addr().Is4() {
		g.max = mtuPayload6
	}
}

func (g *segmenter) gso() bool { return false }

func (g *segmenter) write(iov [][]byte, total, segment int) error {
	if g.buf == nil {
		g.buf = Buffer(maxSegment)
	}
	i, off := 0, 0
	for left := total; left > 0; {
		d := g.buf[:0]
		for len(d) < min(segment, left) {
			p := iov[i][off:]
			n := min(segment-len(d), len(p), left-len(d))
			d = append(d, p[:n]...)
			off += n
			if off == len(iov[i]) {
				i, off = i+1, 0
			}
		}
		if _, err := g.b.c.Write(d); err != nil {
			return err
		}
		left -= len(d)
	}
	return nil
}

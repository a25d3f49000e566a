package bridge

import (
	"net/netip"
	"sync"
	"time"
)

// HelloTopic is the topic on which bridges announce themselves on their
// group, about once per AnnounceInterval and at once when they hear a
// bridge they did not know. Its payload is a msgpack map {"bridge": ID,
// "key": K, "bye": false}; K is the bridge's configuration (subject prefix,
// direction, topics): bridges with the same K on one group are redundant,
// and only the one with the lowest ID forwards. A bridge never forwards
// this topic.
const HelloTopic = "_mcl/bridge"

type hello struct {
	Bridge string `msgpack:"bridge"`
	Key    string `msgpack:"key"`
	Bye    bool   `msgpack:"bye"`
}

// maxPeers bounds the bridges remembered; forgetAfter is how long one
// that fell silent is still recognised by its address and id.
const (
	maxPeers    = 1024
	forgetAfter = 10 * time.Minute
)

type peer struct {
	key  string
	addr netip.AddrPort
	last time.Time
	bye  bool
}

// peers is what a bridge knows of the other bridges on its group, and of
// itself as its own hellos come back (the address its datagrams carry).
type peers struct {
	mu    sync.Mutex
	self  string
	byID  map[string]*peer
	addrs map[netip.AddrPort]time.Time // every bridge's sending address, its own included
}

func newPeers(self string, own netip.AddrPort) *peers {
	p := &peers{self: self, byID: make(map[string]*peer), addrs: make(map[netip.AddrPort]time.Time)}
	p.addrs[norm(own)] = time.Time{} // never forgotten
	return p
}

func norm(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap().WithZone(""), a.Port())
}

// heard records a hello. It reports whether the sender is a bridge not
// heard from within live (then it should hear from us at once).
func (p *peers) heard(h hello, from netip.AddrPort, now time.Time, live time.Duration) (isNew bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	from = norm(from)
	if h.Bridge == p.self {
		if _, ok := p.addrs[from]; !ok {
			p.addrs[from] = time.Time{}
		}
		return false
	}
	if len(p.byID) >= maxPeers {
		p.expire(now)
	}
	q := p.byID[h.Bridge]
	if q == nil {
		if len(p.byID) >= maxPeers {
			return false
		}
		q = &peer{}
		p.byID[h.Bridge] = q
	}
	isNew = !h.Bye && (q.last.IsZero() || q.bye || now.Sub(q.last) > live)
	q.key, q.addr, q.last, q.bye = h.Key, from, now, h.Bye
	if _, own := p.addrs[from]; !own || !p.addrs[from].IsZero() {
		p.addrs[from] = now
	}
	return isNew
}

// expire forgets bridges silent for forgetAfter. p.mu is held.
func (p *peers) expire(now time.Time) {
	for id, q := range p.byID {
		if now.Sub(q.last) > forgetAfter {
			delete(p.byID, id)
		}
	}
	for a, t := range p.addrs {
		if !t.IsZero() && now.Sub(t) > forgetAfter {
			delete(p.addrs, a)
		}
	}
}

// isBridgeAddr reports whether a bridge (this one included) sends from a.
func (p *peers) isBridgeAddr(a netip.AddrPort) bool {
	p.mu.Lock()
	_, ok := p.addrs[norm(a)]
	p.mu.Unlock()
	return ok
}

// isBridgeID reports whether id is this bridge's or one heard on the group.
func (p *peers) isBridgeID(id string) bool {
	if id == p.self {
		return true
	}
	p.mu.Lock()
	_, ok := p.byID[id]
	p.mu.Unlock()
	return ok
}

// leads reports whether this bridge has the lowest id among the live
// bridges of the same key, and how many live bridges it knows.
func (p *peers) leads(key string, now time.Time, live time.Duration) (lead bool, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expire(now)
	lead = true
	for id, q := range p.byID {
		if q.bye || now.Sub(q.last) > live {
			continue
		}
		n++
		if q.key == key && id < p.self {
			lead = false
		}
	}
	return lead, n
}

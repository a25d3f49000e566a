// Package topic matches topics against names and patterns, as every
// --topic flag and mcl.Topics take them. A topic is split into segments on
// "/". In a pattern, a segment "*" matches any one segment, and a segment
// "**" any number of segments, none included (Zenoh's key expressions
// read the same way: "camera/*", "**/front"). A name without "*" is exact.
// "*" anywhere else in a segment ("cam*") is an error: a pattern would
// silently match nothing where its author meant a prefix.
package topic

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// ErrPattern is returned by Compile and NewFilter for a "*" that is not a
// whole segment.
var ErrPattern = errors.New("in a topic pattern, \"*\" and \"**\" must be whole segments, between slashes")

// IsPattern reports whether s is a pattern rather than an exact name.
func IsPattern(s string) bool { return strings.Contains(s, "*") }

// Pattern is a compiled pattern.
type Pattern struct {
	text string
	segs []string // "*", "**", or a literal segment
}

// String returns the pattern as it was written.
func (p Pattern) String() string { return p.text }

// Compile compiles pattern s. Errors: ErrPattern, wrapped with s.
func Compile(s string) (Pattern, error) {
	segs := strings.Split(s, "/")
	out := segs[:0:0]
	for _, seg := range segs {
		if strings.Contains(seg, "*") && seg != "*" && seg != "**" {
			return Pattern{}, fmt.Errorf("%w: %q in %q", ErrPattern, seg, s)
		}
		// "**/**" matches what "**" does: fold them, so that matching
		// stays linear in the segments of the topic.
		if seg == "**" && len(out) > 0 && out[len(out)-1] == "**" {
			continue
		}
		out = append(out, seg)
	}
	return Pattern{text: s, segs: out}, nil
}

// Match reports whether topic matches p. It does not allocate.
func (p Pattern) Match(topic []byte) bool {
	// Segments of the pattern against segments of the topic, as a glob's
	// characters against a string's: on a mismatch, the latest "**" takes
	// one more segment and matching resumes after it. Each topic segment
	// is looked at a bounded number of times per "**".
	pi, ti := 0, 0         // pattern segment, topic byte offset of the next segment
	star, starT := -1, 0   // the latest "**", and where the topic stood when it was taken
	done := len(topic) + 1 // ti past the last segment
	for ti < done || pi < len(p.segs) {
		if pi < len(p.segs) {
			switch seg := p.segs[pi]; {
			case seg == "**":
				star, starT = pi, ti
				pi++
				continue
			case ti < done:
				end := segEnd(topic, ti)
				if seg == "*" || seg == string(topic[ti:end]) {
					pi, ti = pi+1, end+1
					continue
				}
			}
		}
		if star < 0 || starT >= done {
			return false
		}
		// The "**" swallows one more segment.
		starT = segEnd(topic, starT) + 1
		pi, ti = star+1, starT
	}
	return true
}

// segEnd returns where the segment of topic starting at i ends.
func segEnd(topic []byte, i int) int {
	if j := bytes.IndexByte(topic[i:], '/'); j >= 0 {
		return i + j
	}
	return len(topic)
}

// Filter matches topics against a list of names and patterns: a topic
// passes if it equals one of the names or matches one of the patterns.
// Names are looked up in a map, so a list of names costs what it did
// before patterns existed.
type Filter struct {
	names    map[string]struct{}
	patterns []Pattern
}

// NewFilter compiles list. An empty list gives a nil Filter, which every
// topic passes. Errors: ErrPattern, wrapped with the pattern.
func NewFilter(list []string) (*Filter, error) {
	if len(list) == 0 {
		return nil, nil
	}
	f := &Filter{names: make(map[string]struct{})}
	for _, s := range list {
		if !IsPattern(s) {
			f.names[s] = struct{}{}
			continue
		}
		p, err := Compile(s)
		if err != nil {
			return nil, err
		}
		f.patterns = append(f.patterns, p)
	}
	return f, nil
}

// Match reports whether topic passes f. A nil Filter passes every topic.
func (f *Filter) Match(topic []byte) bool {
	if f == nil {
		return true
	}
	if _, ok := f.names[string(topic)]; ok {
		return true
	}
	for _, p := range f.patterns {
		if p.Match(topic) {
			return true
		}
	}
	return false
}

// MatchString is Match for a string.
func (f *Filter) MatchString(topic string) bool {
	if f == nil {
		return true
	}
	if _, ok := f.names[topic]; ok {
		return true
	}
	for _, p := range f.patterns {
		if p.matchString(topic) {
			return true
		}
	}
	return false
}

func (p Pattern) matchString(topic string) bool {
	// A conversion that the compiler does not copy for a call that does
	// not keep it would be nicer; []byte(topic) of a short topic is
	// stack-allocated.
	return p.Match([]byte(topic))
}

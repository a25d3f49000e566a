package bridge

import (
	"errors"
	"fmt"
	"strings"
)

// ErrSubject is returned by Topic for a subject that is not one Subject
// makes: outside the prefix, or with a malformed escape.
var ErrSubject = errors.New("bridge: subject does not encode a topic")

// keep reports whether byte c goes into a subject token as it is: printable
// ASCII other than the NATS separator and wildcards and the escape itself.
func keep(c byte) bool {
	return c > 0x20 && c < 0x7f && c != '.' && c != '*' && c != '>' && c != '%'
}

const hexDigits = "0123456789ABCDEF"

// Subject returns the NATS subject of topic under prefix: prefix, then one
// token per "/"-separated segment of topic. In a token, every byte that is
// not printable ASCII, and ".", "*", ">" and "%", is written %XX (two
// upper-case hex digits); an empty segment is the token "%". So
// "camera/front" is "mcl.camera.front", "a.b/*" is "mcl.a%2Eb.%2A", "/x"
// is "mcl.%.x" and the seed's None topic "" is "mcl.%". Topic reverses it.
func Subject(prefix, topic string) string {
	return string(appendSubject(make([]byte, 0, len(prefix)+1+len(topic)+8), prefix, topic))
}

func appendSubject(b []byte, prefix, topic string) []byte {
	b = append(b, prefix...)
	start := 0
	for i := 0; i <= len(topic); i++ {
		if i < len(topic) && topic[i] != '/' {
			continue
		}
		b = append(b, '.')
		b = appendToken(b, topic[start:i])
		start = i + 1
	}
	return b
}

func appendToken(b []byte, seg string) []byte {
	if seg == "" {
		return append(b, '%')
	}
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if keep(c) {
			b = append(b, c)
		} else {
			b = append(b, '%', hexDigits[c>>4], hexDigits[c&15])
		}
	}
	return b
}

// Topic returns the topic that subject encodes under prefix, reversing
// Subject. It accepts lower-case hex and, from publishers other than a
// bridge, bytes Subject would have escaped (such as UTF-8 letters), as
// long as "%" starts an escape or is a whole token. Errors: ErrSubject.
func Topic(prefix, subject string) (string, error) {
	rest, ok := strings.CutPrefix(subject, prefix+".")
	if !ok {
		return "", fmt.Errorf("%w: %q is not under %q", ErrSubject, subject, prefix+".")
	}
	out := make([]byte, 0, len(rest))
	for i, tok := range strings.Split(rest, ".") {
		if i > 0 {
			out = append(out, '/')
		}
		if tok == "%" {
			continue
		}
		if tok == "" {
			return "", fmt.Errorf("%w: %q has an empty token", ErrSubject, subject)
		}
		for j := 0; j < len(tok); j++ {
			c := tok[j]
			if c != '%' {
				out = append(out, c)
				continue
			}
			if j+2 >= len(tok) {
				return "", fmt.Errorf("%w: %q: %% must be followed by two hex digits", ErrSubject, subject)
			}
			hi, lo := unhex(tok[j+1]), unhex(tok[j+2])
			if hi < 0 || lo < 0 {
				return "", fmt.Errorf("%w: %q: %% must be followed by two hex digits", ErrSubject, subject)
			}
			out = append(out, byte(hi<<4|lo))
			j += 2
		}
	}
	return string(out), nil
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	}
	return -1
}

// maxSubject is the longest subject a bridge publishes or subscribes to.
// A NATS server closes the connection of a client whose protocol line is
// longer than its max_control_line, 4096 bytes by default; the line holds
// the subject and two lengths.
const maxSubject = 4000

// checkPrefix validates a subject prefix: one or more tokens, no
// wildcards, no whitespace.
func checkPrefix(p string) error {
	if p == "" {
		return errors.New("empty subject prefix: use a name such as mcl or site1.mcl")
	}
	for _, tok := range strings.Split(p, ".") {
		if tok == "" || tok == "*" || tok == ">" || strings.ContainsAny(tok, " \t\r\n\f") {
			return fmt.Errorf("subject prefix %q: use dot-separated tokens without spaces, empty tokens or wildcards, such as mcl or site1.mcl", p)
		}
	}
	return nil
}

// subjectsFor returns the NATS subjects to subscribe to for topic patterns
// under prefix (names as Subject, "*" as "*", a trailing "**" as both the
// subject without it and ">", a "**" elsewhere as ">" from there on; the
// bridge filters received messages on the patterns again). Subjects that
// could overlap would deliver a message twice: then, and for no patterns,
// it returns prefix.> alone.
func subjectsFor(prefix string, patterns []string) []string {
	all := []string{prefix + ".>"}
	if len(patterns) == 0 {
		return all
	}
	var subs []string
	for _, p := range patterns {
		segs := strings.Split(p, "/")
		var b []byte
		b = append(b, prefix...)
		ends := false
		for i, s := range segs {
			switch s {
			case "*":
				b = append(b, ".*"...)
				continue
			case "**":
				if i == len(segs)-1 && i > 0 {
					subs = append(subs, string(b)) // "**" matches no segment too
				}
				b = append(b, ".>"...)
				ends = true
			default:
				b = append(b, '.')
				b = appendToken(b, s)
				continue
			}
			if ends {
				break
			}
		}
		subs = append(subs, string(b))
	}
	for i := range subs {
		for j := i + 1; j < len(subs); j++ {
			if overlap(subs[i], subs[j]) {
				return all
			}
		}
	}
	return subs
}

// overlap reports whether some subject matches both NATS subjects a and b.
func overlap(a, b string) bool {
	ta, tb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(ta) && i < len(tb); i++ {
		if ta[i] == ">" || tb[i] == ">" {
			return true
		}
		if ta[i] != tb[i] && ta[i] != "*" && tb[i] != "*" {
			return false
		}
	}
	return len(ta) == len(tb)
}

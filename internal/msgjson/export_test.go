package msgjson

// PackTokens packs data through encoding/json's Decoder, as FromJSON did
// before it walked its input itself: the fuzz test holds the two to the
// same bytes.
func PackTokens(data []byte) ([]byte, error) {
	toks, err := tokenize(data)
	if err != nil {
		return nil, err
	}
	var dst []byte
	for _, t := range toks {
		dst = t.appendTo(dst)
	}
	return dst, nil
}

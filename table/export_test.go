package table

import "github.com/duality-streams/duality/codec"

// RowChangeText formats a record value of a table GroupBy's repartition
// topic, whose rows are encoded with vc, as "-<old> +<new>" (either part
// absent when the record carries no subtraction or no addition).
func RowChangeText[V any](vc codec.Codec[V], show func(V) string, b []byte) (string, error) {
	ch, err := rowChangeCodec[V]{vc}.Decode(b)
	if err != nil {
		return "", err
	}
	var s string
	if ch.hasOld {
		s = "-" + show(ch.old)
	}
	if ch.hasNew {
		if s != "" {
			s += " "
		}
		s += "+" + show(ch.new)
	}
	return s, nil
}

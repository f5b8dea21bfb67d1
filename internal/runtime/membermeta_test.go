package runtime

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
)

func TestMemberMetaRoundTrip(t *testing.T) {
	for _, m := range []memberMeta{
		{},
		{Endpoint: "http://127.0.0.1:8080"},
		{Endpoint: "https://q.example.com/duality/iq"},
		{Endpoint: "http://h:1/" + strings.Repeat("p", maxEndpointLen-11)},
	} {
		b := m.encode()
		if m.Endpoint == "" && len(m.Copies) == 0 {
			require.Nil(t, b, "the zero metadata encodes as no user data")
		}
		require.LessOrEqual(t, len(b), broker.MaxUserData)
		got, err := decodeMemberMeta(b)
		require.NoError(t, err)
		require.Equal(t, m, got)
	}
}

// TestMemberMetaUnknownFields: a field of a newer instance (a tag this
// decoder does not know) is skipped, before and after the known ones.
func TestMemberMetaUnknownFields(t *testing.T) {
	field := func(b []byte, tag uint64, v string) []byte {
		b = binary.AppendUvarint(b, tag)
		b = binary.AppendUvarint(b, uint64(len(v)))
		return append(b, v...)
	}
	b := []byte{memberMetaMagic, memberMetaVersion}
	b = field(b, 300, "standby lags")
	b = field(b, tagEndpoint, "http://a:1")
	b = field(b, 77, "")
	got, err := decodeMemberMeta(b)
	require.NoError(t, err)
	require.Equal(t, memberMeta{Endpoint: "http://a:1"}, got)
}

func TestMemberMetaMalformed(t *testing.T) {
	ok := memberMeta{Endpoint: "http://a:1"}.encode()
	tests := map[string][]byte{
		"no header":         []byte("http://a:1"),
		"header cut":        {memberMetaMagic},
		"unknown version":   append([]byte{memberMetaMagic, memberMetaVersion + 1}, ok[2:]...),
		"tag zero":          {memberMetaMagic, memberMetaVersion, 0, 0},
		"tag cut":           {memberMetaMagic, memberMetaVersion, 0x80},
		"length cut":        {memberMetaMagic, memberMetaVersion, tagEndpoint},
		"length too long":   {memberMetaMagic, memberMetaVersion, tagEndpoint, 5, 'a'},
		"huge length":       binary.AppendUvarint([]byte{memberMetaMagic, memberMetaVersion, tagEndpoint}, 1<<63),
		"duplicate field":   append(append([]byte{}, ok...), ok[2:]...),
		"value cut (last)":  ok[:len(ok)-1],
		"overlong varint":   {memberMetaMagic, memberMetaVersion, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"wrong magic":       append([]byte{'X'}, ok[1:]...),
		"header only magic": {memberMetaMagic},
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			m, err := decodeMemberMeta(b)
			require.ErrorIs(t, err, errMemberMeta)
			require.Equal(t, memberMeta{}, m, "nothing is taken from malformed metadata")
		})
	}
}

// FuzzMemberMeta: decoding never panics, and what decodes re-encodes to
// metadata that decodes the same.
//
//	go test ./internal/runtime -run='^$' -fuzz='^FuzzMemberMeta$' -fuzztime=10s
func FuzzMemberMeta(f *testing.F) {
	f.Add([]byte(nil))
	f.Add(memberMeta{Endpoint: "http://127.0.0.1:8080"}.encode())
	f.Add([]byte{memberMetaMagic, memberMetaVersion, 9, 3, 'a', 'b', 'c'})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMemberMeta(b)
		if err != nil {
			return
		}
		again, err := decodeMemberMeta(m.encode())
		require.NoError(t, err)
		require.Equal(t, m, again)
	})
}

func TestValidEndpoint(t *testing.T) {
	for _, s := range []string{
		"http://127.0.0.1:8080",
		"http://localhost",
		"https://q.example.com/duality/iq",
		"http://[::1]:9000/",
	} {
		require.NoError(t, validEndpoint(s), s)
	}
	for _, s := range []string{
		"",
		"127.0.0.1:8080",
		"localhost:8080",
		"ftp://h:21",
		"http://",
		"http://:8080",
		"http://user:pw@h:1",
		"http://h:1/?x=1",
		"http://h:1/?",
		"http://h:1/#frag",
		"http://h:0",
		"http://h:99999",
		"http://h:1/%zz",
		"http://h/" + strings.Repeat("p", maxEndpointLen),
	} {
		err := validEndpoint(s)
		require.ErrorIs(t, err, ErrInvalidConfig, "%q", s)
		require.Contains(t, err.Error(), "Endpoint", "the error names the option")
	}
}

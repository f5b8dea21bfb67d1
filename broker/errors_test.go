package broker_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/diskspace"
)

func TestValidateTopicName(t *testing.T) {
	for _, tc := range []struct {
		name    string
		topic   string
		wantErr string // "" for a valid name
	}{
		{"one letter", "a", ""},
		{"all allowed characters", "Aa0_.-zZ9", ""},
		{"dots inside", "page.views.v2", ""},
		{"three dots", "...", ""},
		{"leading dot", ".hidden", ""},
		{"underscore only", "_", ""},
		{"dash only", "-", ""},
		{"internal-looking", "__consumer_offsets", ""},
		{"249 characters", strings.Repeat("a", 249), ""},

		{"empty", "", "broker: invalid topic name: empty name"},
		{"dot", ".", `broker: invalid topic name: "." is not allowed`},
		{"dot dot", "..", `broker: invalid topic name: ".." is not allowed`},
		{"250 characters", strings.Repeat("a", 250), "broker: invalid topic name: 250 characters, at most 249 allowed"},
		{"much too long", strings.Repeat("x", 10000), "broker: invalid topic name: 10000 characters, at most 249 allowed"},
		{"space", "page views", `broker: invalid topic name: "page views" has character ' ' at position 4; only [a-zA-Z0-9._-] are allowed`},
		{"only a space", " ", `broker: invalid topic name: " " has character ' ' at position 0; only [a-zA-Z0-9._-] are allowed`},
		{"slash", "a/b", `broker: invalid topic name: "a/b" has character '/' at position 1; only [a-zA-Z0-9._-] are allowed`},
		{"path traversal", "../etc", `broker: invalid topic name: "../etc" has character '/' at position 2; only [a-zA-Z0-9._-] are allowed`},
		{"backslash", `a\b`, `broker: invalid topic name: "a\\b" has character '\\' at position 1; only [a-zA-Z0-9._-] are allowed`},
		{"NUL", "topic\x00", `broker: invalid topic name: "topic\x00" has character '\x00' at position 5; only [a-zA-Z0-9._-] are allowed`},
		{"tab", "a\tb", `broker: invalid topic name: "a\tb" has character '\t' at position 1; only [a-zA-Z0-9._-] are allowed`},
		{"colon", "a:b", `broker: invalid topic name: "a:b" has character ':' at position 1; only [a-zA-Z0-9._-] are allowed`},
		{"plus", "a+b", `broker: invalid topic name: "a+b" has character '+' at position 1; only [a-zA-Z0-9._-] are allowed`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := broker.ValidateTopicName(tc.topic)
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, broker.ErrInvalidTopicName)
			require.EqualError(t, err, tc.wantErr)
		})
	}
}

// TestValidateTopicNameUnicode checks names with non-ASCII characters,
// which Kafka refuses: the error names the character (not its first byte)
// at its byte position. The length limit counts bytes.
func TestValidateTopicNameUnicode(t *testing.T) {
	const allowed = "; only [a-zA-Z0-9._-] are allowed"
	for _, tc := range []struct {
		topic string
		want  string
	}{
		{"é", `"é" has character 'é' at position 0` + allowed},
		{"topic-é", `"topic-é" has character 'é' at position 6` + allowed},
		{"日本", `"日本" has character '日' at position 0` + allowed},
		{"emoji-😀", `"emoji-😀" has character '😀' at position 6` + allowed},
		{"a\u00a0b", `"a\u00a0b" has character '\u00a0' at position 1` + allowed},
		{"a\u200bb", `"a\u200bb" has character '\u200b' at position 1` + allowed},
		{"ok\xff", `"ok\xff" has byte 0xff (not UTF-8) at position 2` + allowed},
		{"\xc3", `"\xc3" has byte 0xc3 (not UTF-8) at position 0` + allowed},
	} {
		t.Run(fmt.Sprintf("%q", tc.topic), func(t *testing.T) {
			err := broker.ValidateTopicName(tc.topic)
			require.ErrorIs(t, err, broker.ErrInvalidTopicName)
			require.EqualError(t, err, "broker: invalid topic name: "+tc.want)
		})
	}
	// 125 two-byte characters are 250 bytes: too long, whatever they are.
	err := broker.ValidateTopicName(strings.Repeat("é", 125))
	require.ErrorIs(t, err, broker.ErrInvalidTopicName)
	require.EqualError(t, err, "broker: invalid topic name: 250 characters, at most 249 allowed")
}

func TestTopicError(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  *broker.TopicError
		want string
	}{
		{"whole topic", &broker.TopicError{Topic: "clicks", Partition: -1, Err: broker.ErrUnknownTopic},
			`topic "clicks": broker: unknown topic`},
		{"one partition", &broker.TopicError{Topic: "clicks", Partition: 7, Err: broker.ErrUnknownPartition},
			`topic "clicks" partition 7: broker: unknown partition`},
		{"partition zero", &broker.TopicError{Topic: "clicks", Partition: 0, Err: broker.ErrCorrupt},
			`topic "clicks" partition 0: broker: corrupt data`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.EqualError(t, tc.err, tc.want)
			require.Same(t, tc.err.Err, errors.Unwrap(tc.err))
			require.ErrorIs(t, tc.err, tc.err.Err)

			var te *broker.TopicError
			require.ErrorAs(t, fmt.Errorf("produce: %w", tc.err), &te)
			require.Equal(t, tc.err.Partition, te.Partition)
		})
	}
	// A TopicError is not some other sentinel.
	err := &broker.TopicError{Topic: "t", Partition: -1, Err: broker.ErrUnknownTopic}
	require.NotErrorIs(t, err, broker.ErrTopicExists)
}

func TestOffsetOutOfRangeError(t *testing.T) {
	err := &broker.OffsetOutOfRangeError{Topic: "clicks", Partition: 2, Offset: 99, Offsets: broker.Offsets{Earliest: 10, Latest: 50}}
	require.EqualError(t, err, `broker: offset 99 out of range [10, 50] for topic "clicks" partition 2`)

	var oor *broker.OffsetOutOfRangeError
	require.ErrorAs(t, fmt.Errorf("fetch: %w", err), &oor)
	require.Equal(t, broker.Offsets{Earliest: 10, Latest: 50}, oor.Offsets)
	require.Nil(t, errors.Unwrap(err))
	require.False(t, broker.IsRetryable(err))
}

func TestRecordTooLargeError(t *testing.T) {
	err := &broker.RecordTooLargeError{Topic: "clicks", Size: 2 << 20, Max: 1 << 20}
	require.EqualError(t, err, `broker: record of 2097152 bytes for topic "clicks" exceeds the limit of 1048576 bytes`)
	require.ErrorIs(t, err, broker.ErrRecordTooLarge)
	require.NotErrorIs(t, err, broker.ErrInvalidConfig)

	// Still matched when wrapped, including inside a TopicError.
	wrapped := fmt.Errorf("produce: %w", &broker.TopicError{Topic: "clicks", Partition: 0, Err: err})
	require.ErrorIs(t, wrapped, broker.ErrRecordTooLarge)
	var rtl *broker.RecordTooLargeError
	require.ErrorAs(t, wrapped, &rtl)
	require.Equal(t, 1<<20, rtl.Max)
	require.False(t, broker.IsRetryable(wrapped))
}

// retryable is an error that classifies itself, as backends' errors do.
type retryable struct{ retry bool }

func (e retryable) Error() string   { return fmt.Sprintf("retryable=%v", e.retry) }
func (e retryable) Retryable() bool { return e.retry }

func TestIsRetryable(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain", errors.New("boom"), false},
		{"sentinel", broker.ErrClosed, false},
		{"fenced", fmt.Errorf("commit: %w", broker.ErrFenced), false},
		{"says retryable", retryable{true}, true},
		{"says not retryable", retryable{false}, false},
		{"wrapped retryable", fmt.Errorf("fetch: %w", &broker.TopicError{Topic: "t", Partition: 1, Err: retryable{true}}), true},
		{"joined", errors.Join(errors.New("a"), retryable{true}), true},
		{"disk full", fmt.Errorf("produce: %w", &diskspace.FullError{Sentinel: broker.ErrDiskFull, Op: "write"}), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, broker.IsRetryable(tc.err))
		})
	}
}

package window

// Exported for the tests of package window_test, which run windowed steps
// on the runtime of the root package (which imports window).
type (
	Rec     = rec
	WKey    = wkey
	JoinRec = joinRec
)

// Model is model.
var Model = model

// LeftJoinModel is joinModel of a left join.
func LeftJoinModel(before, after int64, recs []joinRec) []string {
	return joinModel(leftJoin, before, after, recs)
}

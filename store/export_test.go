package store

// SetIngestMin sets the length from which a value's chunks are ingested
// (16 MiB) to n for a test, and returns the function that restores it.
func SetIngestMin(n int) (restore func()) {
	old := ingestMin.Swap(int64(n))
	return func() { ingestMin.Store(old) }
}

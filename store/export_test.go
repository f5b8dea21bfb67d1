package store

// SetIngestMin sets the length from which a value's chunks are ingested
// (16 MiB) to n for a test, and returns the function that restores it.
func SetIngestMin(n int) (restore func()) {
	old := ingestMin.Swap(int64(n))
	return func() { ingestMin.Store(old) }
}

// SetIngestChunk sets the length of the chunks of ingested values to n
// for a test, and returns the function that restores it.
func SetIngestChunk(n int) (restore func()) {
	old := ingestChunk.Swap(int64(n))
	return func() { ingestChunk.Store(old) }
}

// IngestChunk is the length of the chunks of ingested values.
func IngestChunk() int { return int(ingestChunk.Load()) }

// SetAfterIngest sets a function that an Apply calls once it has ingested
// the chunks of its huge values, before it commits their stubs, for a
// test; it returns the function that restores the previous one.
func SetAfterIngest(f func() error) (restore func()) {
	old := afterIngest
	afterIngest = f
	return func() { afterIngest = old }
}

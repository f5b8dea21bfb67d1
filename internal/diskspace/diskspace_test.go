package diskspace

import (
	"errors"
	"os"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"
)

var errFull = errors.New("test: disk full")

func memFS(t *testing.T, free uint64) *vfs.MemFS {
	t.Helper()
	fs := vfs.NewMem()
	require.NoError(t, fs.MkdirAll("db", 0o755))
	fs.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: free, TotalBytes: 100 << 20, UsedBytes: 100<<20 - free})
	return fs
}

func TestAdmit(t *testing.T) {
	fs := memFS(t, 10<<20)
	g := New(Config{FS: fs, Dir: "db", Sentinel: errFull, Reserve: 2 << 20})
	require.True(t, g.Enabled())
	var unflushed int64
	g.SetUnflushed(func() int64 { return unflushed })

	// 10 MiB free, 2 MiB reserve: a write of n costs 2.25n, so 3.5 MiB fit.
	require.NoError(t, g.Admit(3<<20))
	unflushed = 3 << 20 // what the write left in the write-ahead log
	fs.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 7 << 20, TotalBytes: 100 << 20})
	g.expire() // as if the measure were old
	err := g.Admit(1 << 20)
	require.ErrorIs(t, err, errFull)
	var fe *FullError
	require.ErrorAs(t, err, &fe)
	require.True(t, fe.Retryable())
	require.Equal(t, int64(7<<20), fe.Free)
	require.Equal(t, int64(2<<20+3<<20*5/4+cost(1<<20)), fe.Needed)
	require.Contains(t, err.Error(), "7.0 MiB free")

	// Space returns: admitted again at once (a refusal measures anew).
	fs.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 50 << 20, TotalBytes: 100 << 20})
	require.NoError(t, g.Admit(1<<20))

	// Between measures, admissions add up against half the margin.
	unflushed = 0
	fs.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 12 << 20, TotalBytes: 100 << 20})
	g.expire()
	require.NoError(t, g.Admit(1<<20)) // measured: margin 10 MiB
	require.NoError(t, g.Admit(1<<20)) // spent 4.5 of 5: no measure
	fs.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 2 << 20, TotalBytes: 100 << 20})
	require.ErrorIs(t, g.Admit(1<<20), errFull, "past half the margin it measures again")
}

func TestAdmitSmall(t *testing.T) {
	fs := memFS(t, 1<<20)
	g := New(Config{FS: fs, Dir: "db", Sentinel: errFull, Reserve: 4 << 20})
	require.ErrorIs(t, g.Admit(1), errFull)
	require.ErrorIs(t, g.AdmitSmall(), errFull, "less than half the reserve free")
	fs.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 3 << 20, TotalBytes: 100 << 20})
	require.ErrorIs(t, g.Admit(1), errFull)
	require.NoError(t, g.AdmitSmall(), "a small write needs half the reserve")
}

func TestDisabled(t *testing.T) {
	g := New(Config{FS: vfs.NewMem(), Dir: "db", Sentinel: errFull})
	require.False(t, g.Enabled(), "a file system without free space figures")
	require.NoError(t, g.Admit(1<<40))
	g = New(Config{FS: memFS(t, 0), Dir: "db", Sentinel: errFull, Reserve: -1})
	require.False(t, g.Enabled(), "a negative reserve")
	require.NoError(t, g.Admit(1<<40))
}

func TestDefaultReserve(t *testing.T) {
	require.Equal(t, int64(MinReserve), DefaultReserve(20<<20))
	require.Equal(t, int64(10<<30/1000), DefaultReserve(10<<30))
	require.Equal(t, int64(MaxReserve), DefaultReserve(1<<40))
}

func TestOpenAndBallast(t *testing.T) {
	fs := memFS(t, 50<<20)
	writeFile := func(name string, size int) {
		f, err := fs.Create(fs.PathJoin("db", name), vfs.WriteCategoryUnspecified)
		require.NoError(t, err)
		_, err = f.Write(make([]byte, size))
		require.NoError(t, err)
		require.NoError(t, f.Close())
	}
	writeFile("000004.log", 4<<20)
	g := New(Config{FS: fs, Dir: "db", Sentinel: errFull, Reserve: 2 << 20})
	replays := 0
	walBytes := func() (int64, error) { replays++; return 4 << 20, nil }
	established, err := g.Open(walBytes)
	require.NoError(t, err)
	require.Zero(t, replays, "enough room for every log: no replay to measure")
	established()
	fi, err := fs.Stat(fs.PathJoin("db", BallastFile))
	require.NoError(t, err)
	require.Equal(t, int64(2<<20), fi.Size())

	// Nearly full: 4 MiB of log need 5 MiB plus half the reserve. The
	// ballast goes (MemFS reports the free space set, so it stays short).
	fs.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 3 << 20, TotalBytes: 100 << 20})
	_, err = g.Open(walBytes)
	require.ErrorIs(t, err, errFull)
	var fe *FullError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "open", fe.Op)
	require.Equal(t, int64(1<<20+5<<20), fe.Needed)
	require.Equal(t, 1, replays, "short of the logs' total: the replay is measured")
	_, err = fs.Stat(fs.PathJoin("db", BallastFile))
	require.ErrorIs(t, err, os.ErrNotExist, "the ballast is removed")

	// A little space freed: it opens, and the ballast is not recreated
	// until a quarter of the free space covers it.
	fs.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 7 << 20, TotalBytes: 100 << 20})
	established, err = g.Open(walBytes)
	require.NoError(t, err)
	established()
	_, err = fs.Stat(fs.PathJoin("db", BallastFile))
	require.ErrorIs(t, err, os.ErrNotExist, "7 MiB free: no room for a 2 MiB ballast yet")
}

// BenchmarkAdmit measures an admission on the operating system's file
// system: mostly the fast path, with a measure (statfs) every 100 ms.
func BenchmarkAdmit(b *testing.B) {
	g := New(Config{FS: vfs.Default, Dir: b.TempDir(), Sentinel: errFull})
	require.True(b, g.Enabled())
	b.ReportAllocs()
	for b.Loop() {
		if err := g.Admit(10 << 10); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMeasure measures a measure: statfs and the bookkeeping.
func BenchmarkMeasure(b *testing.B) {
	g := New(Config{FS: vfs.Default, Dir: b.TempDir(), Sentinel: errFull})
	b.ReportAllocs()
	for b.Loop() {
		if err := g.measure(1); err != nil {
			b.Fatal(err)
		}
	}
}

func TestAdmitEager(t *testing.T) {
	fs := memFS(t, 50<<20)
	g := New(Config{FS: fs, Dir: "db", Sentinel: errFull, Reserve: 2 << 20, Eager: true})
	reads := 0
	g.SetUnflushed(func() int64 { reads++; return 0 })
	require.NoError(t, g.Admit(1<<20))
	require.Equal(t, 1, reads)
	// Another process fills the disk: the next admission sees it.
	fs.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 1 << 20, TotalBytes: 100 << 20})
	require.ErrorIs(t, g.Admit(1), errFull)
	require.Equal(t, 1, reads, "the unflushed bytes are read at most every 100 ms")
	// Until then, the writes admitted count as unflushed: besides what
	// their write-ahead log takes, 4 MiB of writes need 5 MiB to flush.
	fs.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 20 << 20, TotalBytes: 100 << 20})
	require.NoError(t, g.Admit(2<<20))
	fs.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 18 << 20, TotalBytes: 100 << 20})
	require.NoError(t, g.Admit(2<<20))
	fs.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 16 << 20, TotalBytes: 100 << 20})
	err := g.Admit(4 << 20)
	require.ErrorIs(t, err, errFull, "16 MiB free, 2 reserved, 6.25 to flush: 9 do not fit")
	var fe *FullError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, int64(2<<20+(1<<20+4<<20)*5/4+cost(4<<20)), fe.Needed)
}

// preallocFS is a MemFS that records the preallocations reaching the
// files it creates.
type preallocFS struct {
	*vfs.MemFS
	got []int64
}

func (fs *preallocFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.MemFS.Create(name, c)
	if err != nil {
		return nil, err
	}
	return &preallocFile{File: f, fs: fs}, nil
}

type preallocFile struct {
	vfs.File
	fs *preallocFS
}

func (f *preallocFile) Preallocate(off, n int64) error {
	f.fs.got = append(f.fs.got, n)
	return f.File.Preallocate(off, n)
}

// TestPreallocate: a write-ahead log file is preallocated only while the
// preallocation takes at most half of the margin above the reserve and
// the room to flush; other files and a disabled guard are not limited.
func TestPreallocate(t *testing.T) {
	mem := memFS(t, 100<<20)
	rec := &preallocFS{MemFS: mem}
	g := New(Config{FS: mem, Dir: "db", Sentinel: errFull, Reserve: 2 << 20})
	fs := g.WatchFS(rec)
	wal, err := fs.Create("db/000002.log", vfs.WriteCategoryUnspecified)
	require.NoError(t, err)
	const size = 35 << 20 // Pebble's for 32 MiB memtables

	// 100 MiB free: 35 is less than half of 98.
	require.NoError(t, wal.Preallocate(0, size))
	require.Equal(t, []int64{size}, rec.got)

	// 60 MiB free: 35 is more than half of 58, so the file is not
	// preallocated, and Pebble is told nothing went wrong.
	mem.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 60 << 20, TotalBytes: 100 << 20})
	require.NoError(t, wal.Preallocate(size, size))
	require.Equal(t, []int64{size}, rec.got)

	// 80 MiB free, but 20 MiB unflushed need 25 to flush: half of 53
	// does not take 35.
	mem.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 80 << 20, TotalBytes: 100 << 20})
	g.SetUnflushed(func() int64 { return 20 << 20 })
	require.NoError(t, g.Admit(1))
	require.NoError(t, wal.Preallocate(size, size))
	require.Equal(t, []int64{size}, rec.got)
	g.SetUnflushed(func() int64 { return 0 })
	require.NoError(t, g.Admit(1))
	require.NoError(t, wal.Preallocate(size, size))
	require.Equal(t, []int64{size, size}, rec.got, "with nothing to flush, 35 is less than half of 78")

	// Only logs are limited: Pebble preallocates nothing else, but a
	// ballast or a user's file may.
	mem.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 10 << 20, TotalBytes: 100 << 20})
	other, err := fs.Create("db/ballast", vfs.WriteCategoryUnspecified)
	require.NoError(t, err)
	require.NoError(t, other.Preallocate(0, 8<<20))
	require.NoError(t, wal.Preallocate(2*size, size))
	require.Equal(t, []int64{size, size, 8 << 20}, rec.got)

	// A guard that limits nothing does not limit preallocations.
	off := New(Config{FS: mem, Dir: "db", Sentinel: errFull, Reserve: -1})
	wal, err = off.WatchFS(rec).Create("db/000003.log", vfs.WriteCategoryUnspecified)
	require.NoError(t, err)
	require.NoError(t, wal.Preallocate(0, size))
	require.Equal(t, []int64{size, size, 8 << 20, size}, rec.got)
}

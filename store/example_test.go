package store_test

import (
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/duality-streams/duality/store"
)

// Example opens one Pebble database for an app instance, writes a batch
// with the changelog offset it reflects, scans a prefix, and drops one
// task's state without touching another's.
func Example() {
	dir, err := os.MkdirTemp("", "store-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	db, err := store.OpenPebble(dir, store.WithBlockCacheSize(16<<20))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	// The stores of two tasks: partitions 0 and 1 of "word-counts".
	p0, err := db.Store("word-counts", 0)
	if err != nil {
		log.Fatal(err)
	}
	p1, err := db.Store("word-counts", 1)
	if err != nil {
		log.Fatal(err)
	}

	var b store.Batch
	b.Put([]byte("apple"), []byte("3"))
	b.Put([]byte("apricot"), []byte("1"))
	b.Put([]byte("banana"), []byte("2"))
	b.SetOffset(41) // the changelog offset of the last record applied
	if err := p0.Apply(&b); err != nil {
		log.Fatal(err)
	}
	b.Reset()
	b.Put([]byte("cherry"), []byte("5"))
	if err := p1.Apply(&b); err != nil {
		log.Fatal(err)
	}

	c := p0.Prefix([]byte("ap"))
	for k, v := range c.All() {
		fmt.Printf("%s=%s\n", k, v)
	}
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	off, ok, err := p0.Offset()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("offset:", off, ok)

	// Partition 0's state is unusable: drop it and rebuild from the start
	// of its changelog. Partition 1 keeps its state.
	if err := p0.Drop(); err != nil {
		log.Fatal(err)
	}
	_, ok, _ = p0.Offset()
	n0, _ := p0.ApproximateCount()
	n1, _ := p1.ApproximateCount()
	fmt.Println("after drop:", ok, n0, n1)
	// Output:
	// apple=3
	// apricot=1
	// offset: 41 true
	// after drop: false 0 1
}

// ExampleCursor walks a range backwards with Next, Key and Value.
func ExampleCursor() {
	s := store.NewMemory("events", 0)
	defer s.Close()
	var b store.Batch
	for _, k := range []string{"t1", "t2", "t3", "t4"} {
		b.Put([]byte(k), []byte("event at "+k))
	}
	if err := s.Apply(&b); err != nil {
		log.Fatal(err)
	}

	c := s.RangeReverse([]byte("t2"), []byte("t4")) // [t2, t4)
	defer c.Close()
	for c.Next() {
		fmt.Printf("%s: %s\n", c.Key(), c.Value())
	}
	if err := c.Err(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// t3: event at t3
	// t2: event at t2
}

// ExampleReseeker looks up several small ranges with one cursor, moved
// from range to range on the snapshot it was created on.
func ExampleReseeker() {
	s := store.NewMemory("orders", 0)
	defer s.Close()
	var b store.Batch
	for _, k := range []string{"alice/1", "alice/2", "bob/1", "carol/1", "carol/2"} {
		b.Put([]byte(k), []byte("order "+k))
	}
	if err := s.Apply(&b); err != nil {
		log.Fatal(err)
	}

	c := s.Range(nil, nil) // moved to each range below, unread here
	defer c.Close()
	r, ok := c.(store.Reseeker)
	if !ok {
		log.Fatal("the cursor cannot be reseeked")
	}
	for _, customer := range []string{"carol", "alice"} {
		prefix := []byte(customer + "/")
		if !r.Reseek(prefix, store.PrefixEnd(prefix)) {
			log.Fatal("reseek refused")
		}
		for c.Next() {
			fmt.Printf("%s\n", c.Value())
		}
		if err := c.Err(); err != nil {
			log.Fatal(err)
		}
	}
	// Output:
	// order carol/1
	// order carol/2
	// order alice/1
	// order alice/2
}

// ExampleQuarantinePebble moves a database that fails to open as corrupt
// aside, keeping it for inspection, and opens an empty one in its place,
// to be rebuilt from the changelogs (what duality.App does on its own).
func ExampleQuarantinePebble() {
	dir, err := os.MkdirTemp("", "store-quarantine")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	// A directory with a manifest but no marker naming it: damaged.
	if err := os.WriteFile(filepath.Join(dir, "MANIFEST-000001"), []byte("x"), 0o644); err != nil {
		log.Fatal(err)
	}

	db, err := store.OpenPebble(dir)
	if errors.Is(err, store.ErrCorrupt) {
		path, qerr := store.QuarantinePebble(dir)
		if qerr != nil {
			log.Fatal(qerr)
		}
		rel, _ := filepath.Rel(dir, filepath.Dir(path))
		fmt.Println("quarantined under", rel)
		db, err = store.OpenPebble(dir)
	}
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	st, err := db.Store("counts", 0)
	if err != nil {
		log.Fatal(err)
	}
	_, ok, err := st.Offset()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("restore from the changelog's start:", !ok)
	// Output:
	// quarantined under quarantine
	// restore from the changelog's start: true
}

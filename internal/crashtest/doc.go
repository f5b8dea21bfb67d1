// Package crashtest is the harness of the kill -9 tests: it runs an app in
// a child process (the test binary re-executed), kills it with SIGKILL at
// random moments, restarts it until it has done its work, and has the test
// check its invariant after every kill. It is imported only by tests.
//
// # Writing a crash test
//
// A crash test is two test functions. The parent, TestX, makes a [Test]
// on a [Backend], sets the broker up through [Test.Open] and calls
// [Test.Run] with a [Plan]: how many kills, when each lands, what to check
// after each. The child, TestXChild (the parent's name and "Child"), calls
// [RunChild] with a [Child]: how to build the app on the broker the child
// opens, and how far it has come. RunChild skips the test unless the
// parent started it, so the child runs only when re-executed.
//
//	func TestX(t *testing.T) {
//		x := crashtest.New(t, crashtest.Embedded)
//		b := x.Open()
//		// create topics, produce the input
//		require.NoError(t, b.Close())
//		x.Run(crashtest.Plan{Kills: 4, MinKills: 4,
//			Schedule: crashtest.Spread(n, 4, 5*time.Millisecond), Check: check})
//	}
//
//	func TestXChild(t *testing.T) {
//		crashtest.RunChild(t, crashtest.Child{App: newApp, Poll: poll})
//	}
//
// # What the harness owns
//
// The seed of [Test.Rand] (logged), the directory the children share (the
// app's state lives in its "state" directory, which a [Plan] can have
// deleted after kills), the child's environment, the kill timing (a kill
// is due once the progress the child reports passes the scheduled target,
// after the scheduled delay), the time bound of every child, the cycles
// and their log lines. The child polls its [Child.Poll] and reports the
// progress on its standard output ("progress <n>", and "done" once the
// app has finished and stopped cleanly).
//
// # Backends
//
// A [Backend] is where the broker lives while children come and go: the
// parent starts it once and passes its address to every child through
// the environment, and the parent and each child open their own client on
// that address. [Embedded] keeps the broker in a directory (the address);
// [Kafka] runs a kfake cluster in a process of its own (cmd/kfake, built
// for the test), so that only the app is killed, and passes its brokers'
// addresses.
//
// # Two instances
//
// On Kafka, whose groups span processes, a [Plan] can run a companion:
// a second instance of the app, in a child of its own that is never
// killed, which takes over the killed instance's tasks until it restarts.
// [Plan.Feed] then produces the input while the instances run, so that
// every kill lands while both process, and the child learns the input's
// size from [Plan.Param].
//
// # Debugging
//
// CRASHDEBUG=1 shows the children's standard error as they run, with
// the apps' log (through [DebugLogger]) and the Kafka clients' log, and
// the progress each child reports; CRASHDEBUG=2 logs the apps at Debug.
// A child too slow fails the test with its standard error and the
// broker's groups, their members (on Kafka each member's client id names
// its process) and their partitions.
package crashtest

package identity_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/storage/storagetest"
)

// stalledLookup is a Store whose GetUserByUsername waits, for one
// username, until release is closed: a login waiting on the database.
type stalledLookup struct {
	identity.Store
	username string
	entered  chan struct{}
	release  chan struct{}
}

func (s *stalledLookup) GetUserByUsername(ctx context.Context, username string) (*identity.User, error) {
	if username == s.username {
		close(s.entered)
		<-s.release
	}
	return s.Store.GetUserByUsername(ctx, username)
}

// TestHashingSlotFreeDuringDatabaseWork: with one hashing slot, a login
// stalled in its database work (counting the attempt, reading the user)
// does not hold the slot, so another login hashes and completes
// meanwhile. (Before: the attempt was counted and the user read while
// holding the slot; with the database slow, the slots idled while
// logins waited, 70% of the raw argon2id rate on MariaDB at c=32.)
func TestHashingSlotFreeDuringDatabaseWork(t *testing.T) {
	store := storagetest.OpenSQLite(t)
	stalled := &stalledLookup{Store: store, username: "alice", entered: make(chan struct{}), release: make(chan struct{})}
	s := &identity.Service{
		Store: stalled, Throttles: store, Hasher: identity.NewPasswordHasher(cheapParams()),
		Policy: identity.DefaultPasswordPolicy(), MaxConcurrentHashes: 1, Lockout: testPolicy,
	}
	signup(t, s, "alice")
	signup(t, s, "bob")
	aliceDone := make(chan string, 1)
	go func() {
		got, _ := attempt(t, s, "alice", goodPassword, testIP)
		aliceDone <- got
	}()
	<-stalled.entered
	bobDone := make(chan string, 1)
	go func() {
		got, _ := attempt(t, s, "bob", goodPassword, testIP)
		bobDone <- got
	}()
	select {
	case got := <-bobDone:
		want(t, "bob's login while alice's waits on the database", got, "ok")
	case <-time.After(20 * time.Second):
		close(stalled.release)
		t.Fatal("bob's login did not complete in 20 s while alice's waited on the database: the hashing slot was held")
	}
	close(stalled.release)
	want(t, "alice's login", <-aliceDone, "ok")
}

// TestHashingIdleOncePerBurst: HashingIdle runs once the hashing slots
// have stayed free for HashingIdleDelay after a hash, once, and not while
// hashes keep coming within the delay.
func TestHashingIdleOncePerBurst(t *testing.T) {
	var calls atomic.Int32
	s, _, _ := newService(t, testPolicy)
	signup(t, s, "alice")
	s.HashingIdle = func() { calls.Add(1) }
	s.HashingIdleDelay = time.Hour
	for range 3 {
		got, _ := attempt(t, s, "alice", goodPassword, testIP)
		want(t, "login", got, "ok")
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("HashingIdle called %d times within its delay of an hour", n)
	}

	s, _, _ = newService(t, testPolicy)
	signup(t, s, "alice")
	s.HashingIdle = func() { calls.Add(1) }
	s.HashingIdleDelay = 10 * time.Millisecond
	got, _ := attempt(t, s, "alice", goodPassword, testIP)
	want(t, "login", got, "ok")
	deadline := time.Now().Add(20 * time.Second)
	for calls.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("HashingIdle not called within 20 s of the last hash")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // five delays without a hash
	if n := calls.Load(); n != 1 {
		t.Fatalf("HashingIdle called %d times after one hash, want 1", n)
	}
}

package resource

// WaitRefresh blocks until the fetch s is running, if any, has finished
// (tests only: Key refreshes an expired cache in the background).
func WaitRefresh(s *RemoteKeySet) {
	s.mu.RLock()
	f := s.inflight
	s.mu.RUnlock()
	if f != nil {
		<-f.done
	}
}

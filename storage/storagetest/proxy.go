package storagetest

import (
	"net"
	"sync"
	"testing"
	"time"
)

// FaultProxy relays loopback TCP connections to a backend (a database) and
// injects the faults of a real network: Cut closes every connection and
// refuses new ones (a crashed server: RST); Hang keeps every socket open
// and accepts new ones but relays nothing until resumed (a stalled network
// or a frozen server, where no RST ever arrives). Bytes read while hung
// are delivered on resume, as TCP would. With backend "" it is a silent
// server that accepts connections and never answers. It stops at test
// clean-up.
type FaultProxy struct {
	ln      net.Listener
	backend string
	mu      sync.Mutex
	cut     bool
	closed  bool
	hung    chan struct{} // non-nil while hung; closed on resume
	conns   map[net.Conn]struct{}
}

// NewFaultProxy starts a proxy to backend ("host:port", or "" for a
// silent server) on a free loopback port.
func NewFaultProxy(t testing.TB, backend string) *FaultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &FaultProxy{ln: ln, backend: backend, conns: map[net.Conn]struct{}{}}
	if backend == "" {
		p.hung = make(chan struct{})
	}
	go p.serve()
	t.Cleanup(p.close)
	return p
}

// Addr is the proxy's "host:port".
func (p *FaultProxy) Addr() string { return p.ln.Addr().String() }

func (p *FaultProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		refuse := p.cut || p.closed
		p.mu.Unlock()
		if refuse {
			c.Close()
			continue
		}
		var up net.Conn
		if p.backend != "" {
			if up, err = net.DialTimeout("tcp", p.backend, 5*time.Second); err != nil {
				c.Close()
				continue
			}
		}
		p.mu.Lock()
		if p.cut || p.closed {
			p.mu.Unlock()
			c.Close()
			if up != nil {
				up.Close()
			}
			continue
		}
		p.conns[c] = struct{}{}
		if up != nil {
			p.conns[up] = struct{}{}
		}
		p.mu.Unlock()
		if up != nil {
			go p.relay(up, c)
			go p.relay(c, up)
		}
	}
}

// relay copies src to dst, holding each chunk while the proxy is hung.
func (p *FaultProxy) relay(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			gate := p.hung
			p.mu.Unlock()
			if gate != nil {
				<-gate
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// SetCut closes every open connection and refuses new ones (true), or
// accepts connections again (false). Cutting ends a hang.
func (p *FaultProxy) SetCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		p.resumeLocked()
		p.closeConnsLocked()
	}
}

// SetHung stops relaying bytes on every connection, old and new, while
// keeping them open (true), or resumes relaying (false).
func (p *FaultProxy) SetHung(hung bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !hung {
		p.resumeLocked()
	} else if p.hung == nil {
		p.hung = make(chan struct{})
	}
}

func (p *FaultProxy) resumeLocked() {
	if p.hung != nil {
		close(p.hung)
		p.hung = nil
	}
}

func (p *FaultProxy) closeConnsLocked() {
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *FaultProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	p.resumeLocked()
	p.closeConnsLocked()
}
